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
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import OPEN

#: Scope extension under which the protocol object of a WebSocket connection is found.
RAW_EXTENSION = "rustqueue.websocket"
#: Receives one message (``str`` for text, ``bytes`` for binary); False asks the protocol to stop
#: reading until :meth:`CoalescingWebSocketProtocol.resume_reading` is called.
Sink = Callable[[str | bytes], bool]
_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack
_TEXT_FIN = 0x81


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


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` whose socket writes are coalesced per loop iteration."""

    _sink: Sink | None = None

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
        if self.curr_msg_data_type == "text":
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError:
                self.logger.exception("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            message = bytes(data)
        if not sink(message) and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

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
