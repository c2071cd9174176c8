"""The WebSocket direct path's own frame parser, driven byte by byte over a real socket: frames split
anywhere, control frames between data frames, fragments, a frame websockets had begun when the session
attached, and the protocol errors websockets reports (bad UTF-8, an unmasked or oversized frame) all
behave as they do through websockets' parser."""

from __future__ import annotations

import asyncio
import json
import os
import struct
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rustqueue_qrusty.server import QrustyServer
from rustqueue_qrusty.wsprotocol import CoalescingWebSocketProtocol, _parser_at_frame_boundary
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from rustqueue_core.engine import RustQueue

TIMEOUT_S = 10.0


class RawClient:
    """A WebSocket client whose bytes are written exactly as the test chooses to split them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.events: deque[Any] = deque()

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"), max_size=None)
        protocol.send_request(protocol.connect())
        client = cls(reader, writer, protocol)
        await client.write(b"".join(protocol.data_to_send()))
        while not isinstance(await client._next_event(), Response):
            pass
        return client

    async def write(self, data: bytes, *, chunk: int | None = None) -> None:
        """Write ``data``, in pieces of ``chunk`` bytes each sent on its own (with a pause) if given."""
        if chunk is None:
            self.writer.write(data)
            await self.writer.drain()
            return
        for start in range(0, len(data), chunk):
            self.writer.write(data[start : start + chunk])
            await self.writer.drain()
            await asyncio.sleep(0.001)

    def encode_text(self, message: dict[str, Any]) -> bytes:
        self.protocol.send_text(json.dumps(message).encode())
        return b"".join(self.protocol.data_to_send())

    async def _next_event(self) -> Any:
        while True:
            self.events.extend(self.protocol.events_received())
            if self.events:
                return self.events.popleft()
            data = await asyncio.wait_for(self.reader.read(65_536), TIMEOUT_S)
            if not data:
                self.protocol.receive_eof()
                self.events.extend(self.protocol.events_received())
                if not self.events:
                    raise ConnectionError("server closed the connection")
                continue
            self.protocol.receive_data(data)

    async def next_frame(self) -> Frame:
        while True:
            event = await self._next_event()
            if isinstance(event, Frame):
                return event

    async def json_frames(self, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = await self.next_frame()
            if frame.opcode is Opcode.TEXT:
                found.append(json.loads(frame.data))
        return found

    async def close_code(self) -> int:
        while True:
            frame = await self.next_frame()
            if frame.opcode is Opcode.CLOSE:
                return Close.parse(frame.data).code

    async def aclose(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def raw(qserver: QrustyServer, engine: RustQueue) -> AsyncIterator[RawClient]:
    await engine.create_queue("q")
    client = await RawClient.open(qserver.port)
    try:
        yield client
    finally:
        await client.aclose()


def _masked(first_byte: int, payload: bytes) -> bytes:
    """A client frame built by hand (for frames websockets' client refuses to make)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first_byte, 0x80 | n)
    elif n < 65_536:
        header = struct.pack("!BBH", first_byte, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first_byte, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def _publish(i: int, payload: str) -> dict[str, Any]:
    return {"type": "publish", "queue": "q", "payload": payload, "req_id": f"p{i}"}


async def _delivered(client: RawClient, count: int) -> list[str]:
    await client.write(client.encode_text({"type": "subscribe", "queue": "q", "req_id": "sub"}))
    payloads: list[str] = []
    while len(payloads) < count:
        for frame in await client.json_frames(1):
            if frame["type"] == "deliver":
                payloads.append(frame["payload"])
    return payloads


async def test_frames_split_at_every_byte_arrive_whole_and_in_order(raw: RawClient) -> None:
    payloads = ["short", "m" * 200, "l" * 70_000]  # 7-bit, 16-bit and 64-bit length encodings
    data = b"".join(raw.encode_text(_publish(i, p)) for i, p in enumerate(payloads))
    # The first two frames and the start of the third (its 10-byte header included) byte by byte.
    head = len(data) - 70_000 + 64
    await raw.write(data[:head], chunk=1)
    await raw.write(data[head:], chunk=4_096)
    replies = await raw.json_frames(3)
    assert [r["req_id"] for r in replies] == ["p0", "p1", "p2"]
    assert all(r["type"] == "ok" for r in replies), replies
    assert await _delivered(raw, 3) == payloads


async def test_a_ping_between_data_frames_is_answered_and_nothing_is_lost(raw: RawClient) -> None:
    first = raw.encode_text(_publish(0, "before"))
    raw.protocol.send_ping(b"are-you-there")
    ping = b"".join(raw.protocol.data_to_send())
    second = raw.encode_text(_publish(1, "after"))
    await raw.write(first + ping + second, chunk=3)
    pong: Frame | None = None
    replies: list[dict[str, Any]] = []
    while pong is None or len(replies) < 2:
        frame = await raw.next_frame()
        if frame.opcode is Opcode.PONG:
            pong = frame
        elif frame.opcode is Opcode.TEXT:
            replies.append(json.loads(frame.data))
    assert bytes(pong.data) == b"are-you-there"
    assert [r["req_id"] for r in replies] == ["p0", "p1"]
    assert await _delivered(raw, 2) == ["before", "after"]


async def test_a_fragmented_message_and_later_frames_are_all_handled(raw: RawClient) -> None:
    text = json.dumps(_publish(0, "in two fragments")).encode()
    raw.protocol.send_text(text[:10], fin=False)
    raw.protocol.send_continuation(text[10:], fin=True)
    fragments = b"".join(raw.protocol.data_to_send())
    await raw.write(raw.encode_text(_publish(1, "whole")) + fragments + raw.encode_text(_publish(2, "after")))
    replies = await raw.json_frames(3)
    assert sorted(r["req_id"] for r in replies) == ["p0", "p1", "p2"]
    assert all(r["type"] == "ok" for r in replies), replies
    assert sorted(await _delivered(raw, 3)) == ["after", "in two fragments", "whole"]


async def test_a_binary_frame_gets_an_error_frame_not_a_closed_socket(raw: RawClient) -> None:
    await raw.write(_masked(0x82, b"\x00\x01binary"))
    await raw.write(raw.encode_text(_publish(0, "still served")))
    frames = await raw.json_frames(2)
    assert frames[0]["type"] == "error", frames
    assert frames[1] == {**frames[1], "type": "ok", "req_id": "p0"}


async def test_invalid_utf8_closes_with_1007_and_keeps_what_came_before(raw: RawClient, engine: RustQueue) -> None:
    await raw.write(raw.encode_text(_publish(0, "kept")) + _masked(0x81, b'{"type": "\xff\xfe"}'))
    assert await raw.close_code() == 1007
    for _ in range(100):  # the publish read before the bad frame is still stored
        if (await engine.counts("q")).waiting == 1:
            break
        await asyncio.sleep(0.02)
    assert (await engine.counts("q")).waiting == 1


async def test_an_unmasked_client_frame_closes_with_1002(raw: RawClient) -> None:
    body = json.dumps(_publish(0, "unmasked")).encode()
    await raw.write(struct.pack("!BB", 0x81, len(body)) + body)
    assert await raw.close_code() == 1002


async def test_a_frame_over_the_size_limit_closes_with_1009_from_its_header(raw: RawClient) -> None:
    # Only the header: the limit (16 MiB) is enforced before any of the payload is read.
    await raw.write(struct.pack("!BBQ", 0x81, 0x80 | 127, 17 * 1024 * 1024) + os.urandom(4))
    assert await raw.close_code() == 1009


async def test_a_client_close_is_answered_and_ends_the_session(raw: RawClient, engine: RustQueue) -> None:
    await raw.write(raw.encode_text(_publish(0, "last")))
    assert (await raw.json_frames(1))[0]["type"] == "ok"
    raw.protocol.send_close(1000, "done")
    await raw.write(b"".join(raw.protocol.data_to_send()), chunk=2)
    assert await raw.close_code() == 1000
    assert (await engine.counts("q")).waiting == 1


def test_websockets_parser_boundary_is_seen_only_between_frames() -> None:
    server = ServerProtocol(max_size=None)
    client = ClientProtocol(parse_uri("ws://127.0.0.1:1/ws"))
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    client.receive_data(b"".join(server.data_to_send()))
    assert _parser_at_frame_boundary(server)
    client.send_text(b"x" * 300)  # a 16-bit length: 4 header bytes, then the mask
    frame = b"".join(client.data_to_send())
    for cut in (1, 2, 4, 8, 100, len(frame) - 1):
        server.receive_data(frame[:cut])
        assert not _parser_at_frame_boundary(server), cut  # the header read and the buffer empty, too
        server.receive_data(frame[cut:])
        assert _parser_at_frame_boundary(server), cut
        (received,) = server.events_received()
        assert received.data == b"x" * 300


async def test_a_frame_begun_before_the_session_attached_is_finished_by_websockets(
    qserver: QrustyServer, engine: RustQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.create_queue("q")
    attach = CoalescingWebSocketProtocol.attach
    attached = asyncio.Event()

    def late_attach(self: CoalescingWebSocketProtocol, sink: Any) -> None:
        def run() -> None:
            attach(self, sink)
            attached.set()

        asyncio.get_running_loop().call_later(0.2, run)

    monkeypatch.setattr(CoalescingWebSocketProtocol, "attach", late_attach)
    # A binary frame whose second half, read on its own, is a valid text frame: a parser that started
    # there would see a message "hello" and then garbage, instead of one binary frame.
    inner = struct.pack("!BB", 0x81, 0x80 | 5) + b"\x00" * 4 + b"hello"
    payload = b"A" * 20 + inner + b"B" * 20
    frame = struct.pack("!BB", 0x82, 0x80 | len(payload)) + b"\x00" * 4 + payload  # a zero mask
    split = 6 + 20
    client = await RawClient.open(qserver.port)
    try:
        await client.write(frame[:split])  # websockets reads the header and the first part
        await asyncio.wait_for(attached.wait(), TIMEOUT_S)
        await client.write(frame[split:] + client.encode_text(_publish(1, "next")))
        replies = await client.json_frames(2)
        assert replies[0]["type"] == "error", replies  # the binary frame, as one message
        assert replies[1]["type"] == "ok" and replies[1]["req_id"] == "p1", replies
        assert await _delivered(client, 1) == ["next"]
    finally:
        await client.aclose()


async def test_an_ordinary_session_uses_the_direct_parser(raw: RawClient, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    parse = CoalescingWebSocketProtocol._parse_data_frames

    def counting(self: CoalescingWebSocketProtocol, buffer: bytearray) -> int:
        used = parse(self, buffer)
        parsed.append(used)
        return used

    monkeypatch.setattr(CoalescingWebSocketProtocol, "_parse_data_frames", counting)
    await raw.write(raw.encode_text(_publish(0, "direct")))
    assert (await raw.json_frames(1))[0]["type"] == "ok"
    assert sum(parsed) > 0  # websockets' parser was found between frames, so the session's frames came here
