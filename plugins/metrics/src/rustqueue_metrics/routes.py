"""Metrics routes and the HTTP timing middleware, for the http plugin's app.

Imported only when the http plugin collects routes, so Litestar stays out of plain imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from rustqueue_metrics.collector import CONTENT_TYPE, EngineMetrics
from rustqueue_metrics.config import MetricsConfig

_encoder = msgspec.json.Encoder()
_PUBLIC = {"rustqueue_public": True}
_TAGS = ["metrics"]


def _unavailable() -> Response[bytes]:
    return Response(content=b"Metrics not available", status_code=503, media_type="text/plain")


def metrics_route_handlers(resolve: Callable[[], EngineMetrics | None], config: MetricsConfig) -> list[Any]:
    """The Prometheus and JSON routes of one engine; 503 ``Metrics not available`` while the plugin is
    not running for it (or Prometheus output is switched off)."""

    @get(config.prometheus_path, tags=_TAGS, summary="Prometheus text exposition", opt=_PUBLIC)
    async def prometheus_metrics() -> Response[bytes]:
        metrics = resolve()
        if metrics is None or not metrics.config.prometheus_enabled:
            return _unavailable()
        await metrics.refresh()
        # Litestar appends "; charset=utf-8" to text types, completing CONTENT_TYPE.
        return Response(content=metrics.render(), media_type=CONTENT_TYPE.removesuffix("; charset=utf-8"))

    @get(config.json_path, tags=_TAGS, summary="Metrics summary as JSON", opt=_PUBLIC)
    async def json_metrics() -> Response[bytes]:
        metrics = resolve()
        if metrics is None:
            return _unavailable()
        await metrics.refresh()
        payload = {"ok": True, "metrics": metrics.summary()}
        return Response(content=_encoder.encode(payload), media_type="application/json")

    return [prometheus_metrics, json_metrics]


def http_metrics_middleware(resolve: Callable[[], EngineMetrics | None]) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware counting and timing every HTTP request the app routes."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            metrics = resolve()
            if metrics is None:
                await app(scope, receive, send)
                return
            status: list[int] = []

            async def send_and_record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            started = time.perf_counter()
            try:
                await app(scope, receive, send_and_record)
            finally:
                metrics.observe_http(
                    str(scope.get("method", "GET")),
                    scope.get("path", ""),
                    status[0] if status else None,
                    time.perf_counter() - started,
                )

        return middleware

    return factory
