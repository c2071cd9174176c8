"""A lean response for pre-encoded JSON bodies.

Handlers encode their answers with msgspec already; Litestar's generic ``Response`` would then rebuild
headers, cookies and content negotiation for every request, which costs about as much as the push
itself. ``JsonBytes`` keeps the handler's ``Response[...]`` annotation (so the OpenAPI document still
describes the body) and goes straight to a two-message ASGI answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Response

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
