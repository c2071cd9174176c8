"""``/api/v1/events`` on the HTTP port (Litestar), contributed through ``rustqueue_http_routes``."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Response, WebSocket, get, websocket
from litestar.enums import MediaType
from litestar.exceptions import WebSocketDisconnect

from rustqueue_websocket.broker import parse_filter
from rustqueue_websocket.streaming import EVENTS_PATH, HandshakeRejected, authenticate_handshake, pump

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler

    from rustqueue_websocket.plugin import WebSocketPlugin


class JobEventFrame(msgspec.Struct, kw_only=True):
    """One text frame of the stream (``?events=all`` adds ``state``, ``attempt`` and ``reason``)."""

    event: str
    job_id: str
    queue: str
    timestamp: str


_UPGRADE_REQUIRED = msgspec.json.encode(
    {
        "ok": False,
        "error": {
            "code": "UPGRADE_REQUIRED",
            "message": "Connect to /api/v1/events with a WebSocket upgrade",
            "details": None,
        },
    }
)


async def _deny(socket: WebSocket[Any, Any, Any], rejected: HandshakeRejected) -> None:
    """Refuse the handshake with an HTTP status and the JSON envelope where the server supports it,
    else close with 4000 + status."""
    await socket.receive()  # the websocket.connect event
    if "websocket.http.response" in (socket.scope.get("extensions") or {}):
        await socket.send(
            {
                "type": "websocket.http.response.start",
                "status": rejected.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await socket.send({"type": "websocket.http.response.body", "body": rejected.body, "more_body": False})
    else:
        await socket.close(code=4000 + rejected.status, reason=rejected.message[:120])


def event_route_handlers(plugin: WebSocketPlugin) -> list[BaseRouteHandler]:
    broker = plugin.broker

    # Authentication happens here rather than in the HTTP guard: the token may come as ``?token=``.
    @websocket(EVENTS_PATH, opt={"rustqueue_public": True})
    async def job_events(socket: WebSocket[Any, Any, Any]) -> None:
        params = socket.query_params
        headers = socket.headers
        client = socket.scope.get("client")
        try:
            try:
                extended, kinds, queues = parse_filter(params.get("events"), params.get("queue"))
            except ValueError as exc:
                raise HandshakeRejected(400, "VALIDATION_ERROR", f"Validation error: {exc}") from None
            authenticate_handshake(
                plugin.host,
                authorization=headers.get("authorization"),
                query_token=params.get("token"),
                peer=client[0] if client else None,
                forwarded_for=headers.get("x-forwarded-for"),
            )
        except HandshakeRejected as rejected:
            await _deny(socket, rejected)
            return
        await socket.accept()
        subscriber = broker.subscribe(extended=extended, kinds=kinds, queues=queues)

        async def wait_closed() -> None:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    return

        try:
            await pump(subscriber, socket.send_text, wait_closed)
        except WebSocketDisconnect:
            pass
        finally:
            broker.unsubscribe(subscriber)
            if socket.connection_state != "disconnect":
                with contextlib.suppress(Exception):
                    await socket.close()

    @get(
        EVENTS_PATH,
        summary="Job event stream (WebSocket)",
        description="Upgrade to a WebSocket to receive one JSON text frame per job event: job.pushed, "
        "job.completed, job.failed (entered the dead-letter queue) and job.cancelled. `?events=all` streams "
        "every engine event kind; `?events=a,b` selects kinds; `?queue=a,b` filters queues; `?token=` "
        "authenticates when a header cannot be sent. A plain GET answers 426.",
        tags=["events"],
        status_code=426,
        opt={"rustqueue_public": True},
    )
    async def job_events_info() -> Response[JobEventFrame]:
        response: Response[Any] = Response(
            _UPGRADE_REQUIRED, status_code=426, media_type=MediaType.JSON, headers={"Upgrade": "websocket"}
        )
        return response

    return [job_events, job_events_info]
