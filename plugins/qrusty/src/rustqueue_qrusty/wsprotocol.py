"""uvicorn's WebSocket protocol with coalesced socket writes and a direct path for a session's frames.

ASGI sends one WebSocket frame per ``websocket.send`` event, and uvicorn writes each frame to the
socket at once: a session pushing a claim batch of deliveries, or replying to a burst of publishes,
makes one ``send`` system call per frame. Here the protocol writes through a transport that gathers
everything written during one event-loop iteration and hands it to the socket in one write at the
end of that iteration. Frames, their order and their bytes are unchanged; only the number of writes
drops, and nothing waits longer than the current iteration.

The protocol also puts itself in the connection scope (``scope["extensions"][RAW_EXTENSION]``) so
that a session can skip the per-frame ASGI round (an event dict, Litestar's wrappers, a queue) both
ways: :meth:`CoalescingWebSocketProtocol.attach` hands every text or binary message straight to a
callback, in arrival order, and :meth:`CoalescingWebSocketProtocol.write_texts` writes many text
frames at once. Control frames, the closing handshake and disconnects stay with uvicorn and reach the
application as ASGI events as before.

Once a callback is attached, inbound unfragmented data frames are also parsed here (header, length,
unmasking with websockets' C helper) instead of by websockets' generator-based parser, which cost
about a tenth of a busy session's CPU. Every other frame (ping, pong, close, a fragment, anything
with reserved bits, an unmasked or oversized frame) goes to websockets whole, at a frame boundary,
so its state machine and its errors are exactly what they would have been; a fragment or a protocol
error hands the rest of the connection to it for good.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import OPEN

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

#: Scope extension under which the protocol object of a WebSocket connection is found.
RAW_EXTENSION = "rustqueue.websocket"
#: Receives one message (``str`` for text, ``bytes`` for binary); False asks the protocol to stop
#: reading until :meth:`CoalescingWebSocketProtocol.resume_reading` is called.
Sink = Callable[[str | bytes], bool]
_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack
_TEXT_FIN = 0x81
_BINARY_FIN = 0x82
#: A final, unextended control frame: ping, pong or close (RFC 6455 §5.5).
_CONTROL_FIN = frozenset({0x88, 0x89, 0x8A})


class CoalescingTransport:
    """Forwards to a real transport, joining the writes of one loop iteration into one ``write``.

    Every other operation is forwarded unchanged; ``close`` writes what is pending first (so a close
    frame queued behind data still leaves after it) and ``abort`` discards it, as the real one does."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._pending_size = 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_size

    def __getattr__(self, name: str) -> Any:
        # get_extra_info, pause_reading, resume_reading, set_protocol, ...
        return getattr(self._transport, name)


def text_frames(payloads: Sequence[bytes]) -> bytes:
    """Unmasked, unfragmented server text frames (RFC 6455 §5.2) of UTF-8 payloads, back to back."""
    parts: list[bytes] = []
    append = parts.append
    for payload in payloads:
        n = len(payload)
        if n < 126:
            append(_SHORT(_TEXT_FIN, n))
        elif n < 65_536:
            append(_MEDIUM(_TEXT_FIN, 126, n))
        else:
            append(_LONG(_TEXT_FIN, 127, n))
        append(payload)
    return b"".join(parts)


def _message_size_limit(conn: Any) -> int | None:
    """The largest unfragmented message websockets' protocol accepts: ``max_size`` before websockets
    15, the smaller of ``max_message_size`` and ``max_fragment_size`` since."""
    if not hasattr(conn, "max_message_size"):
        return cast("int | None", getattr(conn, "max_size", None))
    limits = [limit for limit in (conn.max_message_size, conn.max_fragment_size) if limit is not None]
    return min(limits) if limits else None


def _parser_at_frame_boundary(conn: Any) -> bool:
    """True when websockets' parser holds no part of a frame: its innermost generator waits in
    ``StreamReader.at_eof`` (it only waits there with an empty buffer, before a frame's first byte).
    Any other shape, in this websockets version or another, counts as mid-frame."""
    generator = getattr(conn, "parser", None)
    while (inner := getattr(generator, "gi_yieldfrom", None)) is not None:
        generator = inner
    return getattr(generator, "__qualname__", None) == "StreamReader.at_eof"


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` whose socket writes are coalesced per loop iteration."""

    _sink: Sink | None = None
    #: Bytes read but not yet parsed by the direct path (an incomplete frame).
    _inbound: bytearray | None = None
    #: Set when websockets' parser has taken the connection back for good.
    _parser_handed_back = False
    #: Set once websockets' parser was seen between frames after ``attach``: from then on it is given
    #: whole frames only, so the direct parser's position is always a frame boundary.
    _aligned = False
    #: websockets' limit on one unfragmented message, read once when the direct parser takes over.
    _max_size: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, coalescing))

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][RAW_EXTENSION] = self

    # ------------------------------------------------------------------ direct path
    def attach(self, sink: Sink) -> None:
        """Hand every later message to ``sink`` instead of the ASGI queue. Messages already queued go to
        it first, in order; disconnect events stay in the queue for the application's ``receive``."""
        queued: list[Any] = []
        while not self.queue.empty():
            queued.append(self.queue.get_nowait())
        self._sink = sink
        wants_more = True
        for event in queued:
            if event["type"] == "websocket.receive":
                text = event.get("text")
                wants_more = sink(text if text is not None else event.get("bytes") or b"")
            else:
                self.queue.put_nowait(event)
        if wants_more:
            self.resume_reading()
        elif not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self._sink is None or self._parser_handed_back or not self._direct_parsing_allowed():
            super().data_received(data)
            return
        if not self._aligned:
            if not _parser_at_frame_boundary(self.conn):
                super().data_received(data)  # websockets finishes the frame it has begun
                return
            self._aligned = True
            self._max_size = _message_size_limit(self.conn)
        buffer = self._inbound
        if buffer is None:
            buffer = self._inbound = bytearray()
        buffer += data
        # Deleting a bytearray's head is O(1): a large frame arriving in many reads is not re-copied.
        del buffer[: self._parse_data_frames(buffer)]
        if self._parser_handed_back and buffer:
            rest = bytes(buffer)
            buffer.clear()
            super().data_received(rest)

    def _direct_parsing_allowed(self) -> bool:
        return self.conn.state is OPEN and not self.close_sent and not self.conn.expect_continuation_frame

    def _parse_data_frames(self, buffer: bytearray) -> int:
        """Hand the complete data frames at the start of ``buffer`` to the sink and complete control
        frames to websockets; returns how many bytes were used. Sets ``_parser_handed_back`` when a
        frame needs websockets from here on (the bytes from that frame on are not counted as used)."""
        sink = self._sink
        assert sink is not None
        end = len(buffer)
        pos = 0
        max_size = self._max_size
        while end - pos >= 2:
            head = buffer[pos]
            second = buffer[pos + 1]
            size = second & 0x7F
            start = pos + 2
            if size == 126:
                if end - start < 2:
                    break
                size = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif size == 127:
                if end - start < 8:
                    break
                size = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            data_frame = head in (_TEXT_FIN, _BINARY_FIN)
            if (
                not second & 0x80
                or not (data_frame or head in _CONTROL_FIN)
                or (max_size is not None and size > max_size)
            ):
                self._parser_handed_back = True  # unmasked, fragmented, extended or too large
                return pos
            frame_end = start + 4 + size
            if frame_end > end:
                break
            if not data_frame:
                super().data_received(bytes(buffer[pos:frame_end]))
                pos = frame_end
                if not self._direct_parsing_allowed():
                    self._parser_handed_back = True
                    return pos
                continue
            payload = apply_mask(buffer[start + 4 : frame_end], buffer[start : start + 4])
            pos = frame_end
            if not self._hand_to_sink(sink, payload, head == _TEXT_FIN):
                self._parser_handed_back = True
                return end  # the connection is closing: nothing after this frame is read
        return pos

    def _hand_to_sink(self, sink: Sink, data: bytes, text: bool) -> bool:
        """Give one message to ``sink``, pausing reads when it asks; False when ``text`` is not UTF-8:
        the connection is then closed with 1007, as uvicorn does."""
        if text:
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError:
                self.logger.exception("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return False
        else:
            message = data
        if not sink(message) and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        return True

    def resume_reading(self) -> None:
        if self.read_paused and not self.disconnected:
            self.read_paused = False
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        sink = self._sink
        if sink is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past the close frame: as uvicorn does, the message is dropped
        self._hand_to_sink(sink, bytes(data), self.curr_msg_data_type == "text")

    def can_write(self) -> bool:
        """True while text frames may be written directly (open, nothing negotiated that changes
        the framing, no close frame sent)."""
        return (
            not self.disconnected
            and not self.close_sent
            and self.handshake_complete
            and self.initial_response is None
            and self.conn.state is OPEN
            and not self.conn.extensions
            and not self.conn.expect_continuation_frame
        )

    async def write_texts(self, payloads: Sequence[bytes]) -> bool:
        """Write UTF-8 text messages as one socket write (after the transport's buffer has room); False
        when the connection can no longer take them."""
        if not self.writable.is_set():
            await self.writable.wait()
        if not self.can_write() or self.transport.is_closing():
            return False
        self.transport.write(text_frames(payloads))
        return True
