"""A lean response for pre-encoded JSON bodies, and a lean reader of small request bodies.

Handlers encode their answers with msgspec already; Litestar's generic ``Response`` would then rebuild
headers, cookies and content negotiation for every request, which costs about as much as the push
itself. ``JsonBytes`` keeps the handler's ``Response[...]`` annotation (so the OpenAPI document still
describes the body) and goes straight to a two-message ASGI answer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from litestar import Request, Response
from litestar.exceptions import InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Empty

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

_JSON_HEADERS = ((b"content-type", b"application/json"),)


class RawJsonApp:
    """The ASGI app of one JSON answer."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.status = status
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body, "more_body": False})


class JsonBytes(Response[Any]):
    """An already-encoded JSON body with a status code (and optional extra headers)."""

    __slots__ = ("_raw_body", "_raw_headers", "_raw_status")

    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        # Response.__init__ is skipped on purpose: nothing but ``to_asgi_response`` reads this object.
        self._raw_body = body
        self._raw_status = status
        self._raw_headers = headers

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = [*_JSON_HEADERS, (b"content-length", str(len(self._raw_body)).encode())]
        if self._raw_headers:
            for name, value in self._raw_headers.items():
                headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        return RawJsonApp(self._raw_body, self._raw_status, headers)


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """``await request.body()`` without its per-request header parsing and async generator.

    A small JSON body arrives as one ``http.request`` message; only then does this path differ from
    Litestar's (same size limit, same errors, and the body is cached where ``request.body()`` looks).
    Anything else (cached body, streamed body, early disconnect) goes through ``request.body()``."""
    state = request._connection_state
    if request._body is not Empty or state.body is not Empty or not request.is_connected:
        return await request.body()
    message = await request.receive()
    if message["type"] != "http.request" or message.get("more_body", False):
        return await _read_rest(request, message)
    body: bytes = message["body"]
    if len(body) > (request.route_handler.resolve_request_max_body_size() or math.inf):
        raise RequestEntityTooLarge
    request.is_connected = False
    request._body = state.body = body
    return body


async def _read_rest(request: Request[Any, Any, Any], first: Any) -> bytes:
    """The rest of a body sent in several messages, with Litestar's checks (size announced and
    received, disconnect)."""
    limit = request.route_handler.resolve_request_max_body_size() or math.inf
    announced = request.content_length
    if announced is not None and announced > limit:
        raise RequestEntityTooLarge
    chunks: list[bytes] = []
    received = 0
    message = first
    while True:
        if message["type"] == "http.request":
            chunk = message["body"]
            if chunk:
                received += len(chunk)
                if received > limit:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
        message = await request.receive()
    body = b"".join(chunks)
    request.is_connected = False
    request._body = request._connection_state.body = body
    return body
