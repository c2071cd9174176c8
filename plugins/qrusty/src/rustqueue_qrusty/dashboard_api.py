"""qrusty's read-only JSON on rustqueue's HTTP API, for the dashboard (one UI for both models).

The qrusty listener keeps the in-process stores (operation timings, time series, recent log lines);
these routes find them through the engine they share, so they answer on the http port under
``/api/v1/qrusty/...`` and need credentials like the rest of the API when an auth plugin is active.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, get
from litestar.params import FromPath

from rustqueue_qrusty.model import QrustyError

if TYPE_CHECKING:
    from rustqueue_qrusty.server import QrustyServer

_servers: weakref.WeakKeyDictionary[Any, QrustyServer] = weakref.WeakKeyDictionary()
_encoder = msgspec.json.Encoder()
PROTECTED: dict[str, Any] = {"rustqueue_protected": True}


def register(engine: Any, server: QrustyServer) -> None:
    _servers[engine] = server


def unregister(engine: Any) -> None:
    _servers.pop(engine, None)


def _json(value: Any, status: int = 200) -> Response[bytes]:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


def _server(request: Request[Any, Any, Any]) -> QrustyServer | None:
    return _servers.get(request.app.state.get("rustqueue_engine"))


def _unavailable() -> Response[bytes]:
    return _json({"status": "error", "code": "UNAVAILABLE", "message": "the qrusty transport is not running"}, 404)


def _error(exc: QrustyError) -> Response[bytes]:
    return _json({"status": "error", "code": exc.code, "message": exc.message}, exc.status)


@get("/api/v1/qrusty/stats", opt=PROTECTED)
async def qrusty_stats(request: Request[Any, Any, Any]) -> Response[bytes]:
    server = _server(request)
    return _json(await server.service.stats()) if server is not None else _unavailable()


@get("/api/v1/qrusty/queues/{queue:str}/metrics", opt=PROTECTED)
async def qrusty_queue_metrics(request: Request[Any, Any, Any], queue: FromPath[str]) -> Response[bytes]:
    server = _server(request)
    if server is None:
        return _unavailable()
    try:
        return _json(await server.service.queue_metrics(queue))
    except QrustyError as exc:
        return _error(exc)


@get("/api/v1/qrusty/operation-timings", opt=PROTECTED)
async def qrusty_operation_timings(request: Request[Any, Any, Any]) -> Response[bytes]:
    server = _server(request)
    return _json(server.service.timings.snapshot()) if server is not None else _unavailable()


@get("/api/v1/qrusty/logs", opt=PROTECTED)
async def qrusty_logs(request: Request[Any, Any, Any]) -> Response[bytes]:
    server = _server(request)
    if server is None:
        return _unavailable()
    lines = list(server.logs.recent) if server.logs is not None else []
    return _json({"lines": lines})


@get("/api/v1/qrusty/info", opt=PROTECTED)
async def qrusty_info(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Where the qrusty API listens and its memory level: what a UI needs to connect to it."""
    server = _server(request)
    if server is None:
        return _unavailable()
    return _json({"port": server.port, "host": server.host, "memory": server.service.memory_status()})


ROUTES = [qrusty_stats, qrusty_queue_metrics, qrusty_operation_timings, qrusty_logs, qrusty_info]
