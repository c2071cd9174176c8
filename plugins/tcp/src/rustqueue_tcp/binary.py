"""Binary batch frames sharing the TCP port, chosen by the first byte of a frame.

All integers are big-endian; UUIDs are 16 raw bytes.

Requests: ``0x01`` push batch ``u16 qlen | queue | u32 count | count * (u32 len | payload)``;
``0x02`` pull batch ``u16 qlen | queue | u32 count``; ``0x03`` ack batch ``u32 count | count * uuid``;
``0x10`` channel frame ``u16 channel | one inner 0x01/0x02/0x03 frame``.

Responses: ``0x00 | …`` on success, ``0x01 | u16 len | message`` on error; a channel frame's response is
``u16 channel | inner response`` (no leading 0x10).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PUSH, PULL, ACK, CHANNEL = 0x01, 0x02, 0x03, 0x10
FRAME_KINDS = frozenset({PUSH, PULL, ACK, CHANNEL})

#: A payload above this is refused (decode error; the connection stays open).
MAX_PAYLOAD = 1_048_576
#: A payload or an ack id block above this is refused and the connection closed.
MAX_READ_PAYLOAD = 4 * 1_048_576
#: Upper bound of a whole frame held in memory (many payloads in one push batch).
MAX_FRAME = 64 * 1_048_576

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U32_PAIR = struct.Struct(">II")


class FrameError(Exception):
    """A framing error: the server answers with a binary error and closes the connection."""


@dataclass(slots=True)
class Frame:
    kind: int
    queue: str = ""
    count: int = 0
    payloads: list[bytes] = field(default_factory=list)
    ids: list[bytes] = field(default_factory=list)
    channel: int | None = None
    #: Set when the frame was read whole but cannot be executed (answered with this error).
    decode_error: str | None = None


class FrameReader:
    """Incremental parser of one binary frame at the start of a buffer.

    ``parse`` returns ``(frame, consumed)`` or ``None`` while the frame is incomplete. For push frames
    the scan of item lengths resumes where the previous call stopped, so a large frame arriving in many
    chunks is scanned once.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._need = 0
        self._scan_pos = 0
        self._scanned = 0
        self._spans: list[tuple[int, int]] = []

    def parse(self, buf: bytearray) -> tuple[Frame, int] | None:
        if len(buf) < self._need:
            return None
        kind = buf[0]
        base = 0
        channel: int | None = None
        if kind == CHANNEL:
            if len(buf) < 4:
                self._need = 4
                return None
            channel = _U16.unpack_from(buf, 1)[0]
            base = 3
            kind = buf[3]
            if kind not in (PUSH, PULL, ACK):
                raise FrameError(f"Decode error: invalid inner frame type 0x{kind:02x} in channel frame")
        result = self._parse_inner(buf, base, kind)
        if result is None:
            return None
        frame, end = result
        frame.channel = channel
        self._reset()
        return frame, end

    def _parse_inner(self, buf: bytearray, base: int, kind: int) -> tuple[Frame, int] | None:
        if kind == ACK:
            if len(buf) < base + 5:
                self._need = base + 5
                return None
            count = _U32.unpack_from(buf, base + 1)[0]
            if count * 16 > MAX_READ_PAYLOAD:
                raise FrameError(f"Decode error: ack batch too large: {count} ids")
            end = base + 5 + count * 16
            if len(buf) < end:
                self._need = end
                return None
            ids = [bytes(buf[i : i + 16]) for i in range(base + 5, end, 16)]
            return Frame(kind=ACK, count=count, ids=ids), end
        # push and pull start with the queue name
        if len(buf) < base + 3:
            self._need = base + 3
            return None
        qlen = _U16.unpack_from(buf, base + 1)[0]
        head = base + 3 + qlen + 4
        if len(buf) < head:
            self._need = head
            return None
        queue_bytes = bytes(buf[base + 3 : base + 3 + qlen])
        count = _U32.unpack_from(buf, base + 3 + qlen)[0]
        decode_error: str | None = None
        try:
            queue = queue_bytes.decode("utf-8")
        except UnicodeDecodeError:
            queue = ""
            decode_error = "Decode error: queue name is not valid UTF-8"
        if kind == PULL:
            return Frame(kind=PULL, queue=queue, count=count, decode_error=decode_error), head
        return self._parse_push_items(buf, head, queue, count, decode_error)

    def _parse_push_items(
        self, buf: bytearray, head: int, queue: str, count: int, decode_error: str | None
    ) -> tuple[Frame, int] | None:
        pos = self._scan_pos or head
        spans = self._spans
        size = len(buf)
        while self._scanned < count:
            if size < pos + 4:
                self._need = pos + 4
                break
            length = _U32.unpack_from(buf, pos)[0]
            if length > MAX_READ_PAYLOAD:
                raise FrameError(f"Decode error: payload too large: {length} bytes")
            end = pos + 4 + length
            if end > MAX_FRAME:
                raise FrameError(f"Decode error: frame exceeds maximum of {MAX_FRAME} bytes")
            if size < end:
                self._need = end
                break
            spans.append((pos + 4, end))
            self._scanned += 1
            pos = end
        self._scan_pos = pos
        if self._scanned < count:
            return None
        payloads = [bytes(buf[start:stop]) for start, stop in spans]
        if decode_error is None:
            for payload in payloads:
                if len(payload) > MAX_PAYLOAD:
                    decode_error = f"Decode error: payload too large: {len(payload)} bytes"
                    break
        return Frame(kind=PUSH, queue=queue, count=count, payloads=payloads, decode_error=decode_error), pos


# --------------------------------------------------------------------------- responses


def encode_error(message: str) -> bytes:
    data = message.encode("utf-8")[:0xFFFF]
    return b"\x01" + _U16.pack(len(data)) + data


def encode_push_ok(ids: list[bytes]) -> bytes:
    return b"\x00" + _U32.pack(len(ids)) + b"".join(ids)


def encode_pull_ok(items: list[tuple[bytes, bytes]]) -> bytes:
    parts = [b"\x00", _U32.pack(len(items))]
    for job_id, data in items:
        parts.append(job_id)
        parts.append(_U32.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def encode_ack_ok(acked: int, failed: int) -> bytes:
    return b"\x00" + _U32_PAIR.pack(acked, failed)


def with_channel(channel: int | None, response: bytes) -> bytes:
    return response if channel is None else _U16.pack(channel) + response


# --------------------------------------------------------------------------- requests (clients, tests)


def encode_push_frame(queue: str, payloads: list[bytes]) -> bytes:
    q = queue.encode("utf-8")
    parts = [bytes([PUSH]), _U16.pack(len(q)), q, _U32.pack(len(payloads))]
    for payload in payloads:
        parts.append(_U32.pack(len(payload)))
        parts.append(payload)
    return b"".join(parts)


def encode_pull_frame(queue: str, count: int) -> bytes:
    q = queue.encode("utf-8")
    return bytes([PULL]) + _U16.pack(len(q)) + q + _U32.pack(count)


def encode_ack_frame(ids: list[bytes]) -> bytes:
    return bytes([ACK]) + _U32.pack(len(ids)) + b"".join(ids)


def encode_channel_frame(channel: int, inner: bytes) -> bytes:
    return bytes([CHANNEL]) + _U16.pack(channel) + inner
