"""A WebSocket listener of its own (``websockets`` library), used when the http plugin is not loaded."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rustqueue_websocket.broker import parse_filter
from rustqueue_websocket.streaming import EVENTS_PATH, HandshakeRejected, authenticate_handshake, pump

if TYPE_CHECKING:
    from rustqueue_websocket.plugin import WebSocketPlugin

logger = logging.getLogger("rustqueue.websocket")


def _query(request: Request) -> tuple[str, dict[str, str]]:
    parts = urlsplit(request.path)
    return parts.path, {key: values[-1] for key, values in parse_qs(parts.query).items()}


def _reject(rejected: HandshakeRejected) -> Response:
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(rejected.body)))])
    return Response(rejected.status, HTTPStatus(rejected.status).phrase, headers, rejected.body)


@contextlib.asynccontextmanager
async def serve_events(plugin: WebSocketPlugin, host: str, port: int) -> AsyncIterator[Any]:
    """Serve ``/api/v1/events`` on ``host:port`` while entered; the server object exposes its sockets."""
    broker = plugin.broker

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path, params = _query(request)
        try:
            if path != EVENTS_PATH:
                raise HandshakeRejected(404, "NOT_FOUND", f"No route for GET {path}")
            parse_filter(params.get("events"), params.get("queue"))
            remote = connection.remote_address
            authenticate_handshake(
                plugin.host,
                authorization=request.headers.get("Authorization"),
                query_token=params.get("token"),
                peer=remote[0] if remote else None,
                forwarded_for=request.headers.get("X-Forwarded-For"),
            )
        except ValueError as exc:
            return _reject(HandshakeRejected(400, "VALIDATION_ERROR", f"Validation error: {exc}"))
        except HandshakeRejected as rejected:
            return _reject(rejected)
        return None

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        _, params = _query(connection.request)
        extended, kinds, queues = parse_filter(params.get("events"), params.get("queue"))
        subscriber = broker.subscribe(extended=extended, kinds=kinds, queues=queues)

        async def wait_closed() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for _ in connection:
                    pass

        try:
            await pump(subscriber, connection.send, wait_closed)
        except ConnectionClosed:
            pass
        finally:
            broker.unsubscribe(subscriber)

    async with serve(handler, host, port, process_request=process_request, compression=None) as server:
        logger.info("WebSocket events listening on ws://%s:%d%s", host, port, EVENTS_PATH)
        try:
            yield server
        finally:
            broker.close_all()
