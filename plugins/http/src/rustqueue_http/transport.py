"""uvicorn protocol whose transport writes once per loop iteration.

uvicorn writes a response's status line and headers, then its body, as two ``transport.write`` calls;
on a fresh connection each becomes its own ``send`` syscall and TCP segment. Small JSON responses are
the whole workload of this API, so writes made in one loop iteration are joined and sent together.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class CoalescingTransport(asyncio.Transport):
    """Wraps a transport: ``write`` buffers, a ``call_soon`` callback sends the joined bytes."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(chunk) for chunk in self._pending)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))


class JsonResponseWriter:
    """Writes one complete JSON response straight to a uvicorn request cycle and finishes the cycle as
    uvicorn's own ``send`` would (for fast paths that answer without the ASGI app)."""

    __slots__ = ("_prefix", "_prefix_for")

    def __init__(self) -> None:
        self._prefix_for: list[tuple[bytes, bytes]] | None = None
        self._prefix = b""

    def respond(self, cycle: RequestResponseCycle, status: int, body: bytes, headers: bytes = b"") -> None:
        """``headers``: extra header lines, each ending in CRLF."""
        if cycle.disconnected or cycle.response_complete:
            return
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        defaults = cycle.default_headers
        if defaults is not self._prefix_for:  # uvicorn renews its default headers (date) every second
            self._prefix_for = defaults
            self._prefix = b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
        close = b"" if cycle.keep_alive else b"connection: close\r\n"
        cycle.transport.write(
            b"%s%scontent-type: application/json\r\ncontent-length: %d\r\n%s%s\r\n%s"
            % (STATUS_LINE[status], self._prefix, len(body), headers, close, body)
        )
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()
