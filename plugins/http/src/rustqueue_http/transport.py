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


def plain_body_length(headers: list[tuple[bytes, bytes]], refused: tuple[bytes, ...] = (), missing: int = 0) -> int:
    """The announced body length of a request (``missing`` without one); -1 for a chunked body, a
    doubtful or repeated length, or any header named in ``refused``."""
    length = -2
    for name, value in headers:
        if name == b"content-length":
            if length != -2 or not value.isdigit():
                return -1
            length = int(value)
        elif name == b"transfer-encoding" or name in refused:
            return -1
    return missing if length == -2 else length


class FastRouteProtocol(CoalescingHttpToolsProtocol):
    """An httptools protocol that hands complete requests on some routes to a fast path instead of the
    ASGI app. ``fast_route`` picks them (None: the app serves the request); ``fast_serve`` gets each
    one once its whole body has arrived."""

    _fast_wait: tuple[RequestResponseCycle, Any] | None = None

    def fast_route(self, cycle: RequestResponseCycle) -> Any:
        raise NotImplementedError

    def fast_serve(self, cycle: RequestResponseCycle, route: Any) -> None:
        raise NotImplementedError

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # ``app`` is another one when uvicorn answers for itself (its concurrency limit).
        route = self.fast_route(cycle) if app is self.app and not cycle.waiting_for_100_continue else None
        if route is None:
            super()._start_asgi_task(cycle, app)
        elif cycle.more_body:
            self._fast_wait = (cycle, route)  # served once its body is complete (on_message_complete)
        else:
            self.fast_serve(cycle, route)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        waiting = self._fast_wait
        if waiting is not None and not waiting[0].more_body:
            self._fast_wait = None
            self.fast_serve(*waiting)


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
