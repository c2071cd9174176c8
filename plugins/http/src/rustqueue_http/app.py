"""The Litestar application: ``create_app(engine)`` for a standalone server and ``RustQueuePlugin`` to
mount the API in your own Litestar app.

Errors always answer the JSON envelope ``{"ok": false, "error": {"code", "message", "details": null}}``:
engine errors with their own status, framework errors (malformed JSON, wrong shape, unknown path,
wrong method, body too large) with the matching status.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import License
from litestar.plugins import InitPluginProtocol

from rustqueue_core.errors import Forbidden, RustQueueError
from rustqueue_core.models import Credentials
from rustqueue_http import wire
from rustqueue_http.landing import GUIDE_PAGES, LANDING_HTML
from rustqueue_http.openapi import RequestBodyJsonRenderPlugin
from rustqueue_http.routes_admin import (
    health_route_handler,
    metrics_unavailable_handler,
    queue_route_handlers,
    schedule_route_handlers,
    webhooks_disabled_handlers,
)
from rustqueue_http.routes_jobs import PRINCIPAL_KEY, job_route_handlers

if TYPE_CHECKING:
    from litestar.config.app import AppConfig
    from litestar.types import ASGIApp, ControllerRouterHandler, ExceptionHandlersMap, Receive, Scope, Send

    from rustqueue_core.config import Config
    from rustqueue_core.engine import RustQueue
    from rustqueue_core.plugins import PluginHost

logger = logging.getLogger("rustqueue.http")

API_TITLE = "RustQueue API"
API_VERSION = "0.3.0"
ENGINE_STATE_KEY = "rustqueue_engine"
CONFIG_STATE_KEY = "rustqueue_config"
#: Largest job payload (1 MiB) plus room for metadata, options and the envelope.
DEFAULT_MAX_BODY_BYTES = 1_048_576 + 131_072
#: Path prefixes that need credentials when an auth plugin is active (PROTOCOL §3.2).
PROTECTED_PREFIXES = (
    "/api/v1/queues",
    "/api/v1/jobs",
    "/api/v1/flows",
    "/api/v1/schedules",
    "/api/v1/webhooks",
    "/api/v1/events",
    "/dashboard",
)
_CODE_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


# --------------------------------------------------------------------------- errors


def _envelope(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, with_details: bool = True
) -> Response[Any]:
    body = wire.error_body(code, message, with_details=with_details)
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def rustqueue_error_handler(_: Request[Any, Any, Any], exc: RustQueueError) -> Response[Any]:
    headers = None
    retry_after_ms = getattr(exc, "retry_after_ms", 0)
    if retry_after_ms:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_ms / 1000)))}
    return _envelope(exc.status, exc.code, exc.message, headers=headers)


def wire_error_handler(_: Request[Any, Any, Any], exc: wire.WireError) -> Response[Any]:
    return _envelope(exc.status, exc.code, exc.message, with_details=exc.with_details)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _CODE_BY_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "HTTP_ERROR")
    method, path = request.scope.get("method", "GET"), request.scope["path"]
    if status == 404 and exc.detail in ("Not Found", ""):
        message = f"No route for {method} {path}"
    elif status == 405:
        message = f"Method {method} is not allowed for {path}"
    elif status == 413:
        message = "Request body is too large"
    elif status in (400, 422):
        extra = exc.extra if isinstance(exc.extra, list | dict) and exc.extra else None
        message = f"Validation error: {exc.detail}" + (f": {wire.encode(extra).decode()}" if extra else "")
    else:
        message = exc.detail
    headers = dict(exc.headers) if exc.headers else None
    return _envelope(status, code, message, headers=headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error in %s %s", request.scope.get("method"), request.scope["path"])
    return _envelope(500, "INTERNAL_ERROR", f"Internal error: {type(exc).__name__}: {exc}")


ROUTE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    RustQueueError: rustqueue_error_handler,
    wire.WireError: wire_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
#: Also applied app-wide by ``create_app``, so routing errors (404, 405) answer the envelope too.
APP_EXCEPTION_HANDLERS: ExceptionHandlersMap = dict(ROUTE_EXCEPTION_HANDLERS)


# --------------------------------------------------------------------------- auth


def make_auth_middleware(host: PluginHost) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware asking the plugin host who the caller is, for protected paths and handlers marked
    ``opt={"rustqueue_protected": True}``; handlers marked ``rustqueue_public`` are never checked.

    ``AuthError`` answers 401 and ``RateLimited`` (lockout) 429 through the error handlers. Middleware
    rather than a Litestar guard: guards copy the route handler on every request and run synchronous
    callables in a thread, which would dominate the cost of a push."""

    authenticate = host.authenticate
    authorize = host.authorize

    def middleware(app: ASGIApp) -> ASGIApp:
        async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] != "OPTIONS":  # type: ignore[typeddict-item]
                opt = scope["route_handler"].opt
                if not opt.get("rustqueue_public") and (
                    opt.get("rustqueue_protected") or scope["path"].startswith(PROTECTED_PREFIXES)
                ):
                    principal = authenticate(_credentials(scope))
                    scope[PRINCIPAL_KEY] = principal  # type: ignore[literal-required]
                    action, queue = request_action(scope["method"], scope["path"])  # type: ignore[typeddict-item]
                    if not authorize(principal, action, queue):
                        raise Forbidden(action, queue)
            await app(scope, receive, send)

        return authenticated

    return middleware


_JOB_ACTIONS = {"ack": "ack", "ack-batch": "ack", "fail": "fail", "cancel": "cancel", "progress": "progress",
                "heartbeat": "heartbeat"}  # fmt: skip


def request_action(method: str, path: str) -> tuple[str, str | None]:
    """The ``rustqueue_authorize`` action of a request and the queue it names (the names the TCP
    transport uses: push, pull, ack, fail, cancel, progress, heartbeat, schedule, read, admin)."""
    parts = path.strip("/").split("/")
    queue = parts[3] if len(parts) > 3 and parts[:3] == ["api", "v1", "queues"] else None
    if queue is not None and len(parts) == 5 and parts[4] == "jobs":
        return ("push" if method == "POST" else "pull"), queue
    if len(parts) >= 4 and parts[:3] == ["api", "v1", "jobs"]:
        action = _JOB_ACTIONS.get(parts[-1])
        if action is not None and method == "POST":
            return action, None
    if len(parts) >= 3 and parts[2] == "schedules":
        return ("read" if method == "GET" else "schedule"), None
    return ("read" if method == "GET" else "admin"), queue


def _credentials(scope: Scope) -> Credentials:
    authorization = forwarded = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    client = scope.get("client")
    return Credentials(
        transport="http", header=authorization, peer=client[0] if client else None, forwarded_for=forwarded
    )


# --------------------------------------------------------------------------- assembly


def _route_paths(handlers: Iterable[Any]) -> set[str]:
    paths: set[str] = set()
    for handler in handlers:
        if isinstance(handler, Router):
            paths.update(route.path for route in handler.routes)
        elif hasattr(handler, "paths"):
            paths.update(handler.paths)
        elif isinstance(getattr(handler, "path", None), str):
            paths.add(handler.path)
    return paths


def contributed_routes(host: PluginHost | None, app_config: AppConfig) -> list[ControllerRouterHandler]:
    """Route handlers other plugins add through ``rustqueue_http_routes`` (websocket, webhooks …)."""
    if host is None:
        return []
    hook = getattr(host.hook, "rustqueue_http_routes", None)
    if hook is None:
        return []
    handlers: list[ControllerRouterHandler] = []
    for value in hook(app_config=app_config):
        if value is None:
            continue
        if isinstance(value, list | tuple):
            handlers.extend(value)
        else:
            handlers.append(value)
    return handlers


def landing_route_handlers() -> list[ControllerRouterHandler]:
    """``/`` and the guide pages, all public."""

    @get("/", media_type=MediaType.HTML, include_in_schema=False, opt={"rustqueue_public": True})
    async def landing_page() -> str:
        return LANDING_HTML

    @get(list(GUIDE_PAGES), media_type=MediaType.HTML, include_in_schema=False, opt={"rustqueue_public": True})
    async def guide_page(request: Request[Any, Any, Any]) -> str:
        return GUIDE_PAGES[request.scope["path"].rstrip("/")]

    return [landing_page, guide_page]


class RustQueuePlugin(InitPluginProtocol):
    """Mount the rustqueue HTTP API into a Litestar application.

    ``Litestar(plugins=[RustQueuePlugin(engine)])`` adds every ``/api/v1`` route, the routes other
    plugins contribute, authentication through the engine's plugin host and the JSON error envelope
    for those routes. Handlers of other plugins reach the engine as ``app.state["rustqueue_engine"]``.
    ``standalone=True`` (used by ``create_app``) also claims ``/``, OpenAPI, CORS and app-wide error
    handling.
    """

    def __init__(self, engine: RustQueue, config: Config | None = None, *, standalone: bool = False) -> None:
        self.engine = engine
        self.config = config
        self.standalone = standalone

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        engine = self.engine
        host: PluginHost | None = getattr(engine, "host", None)
        app_config.state[ENGINE_STATE_KEY] = engine
        app_config.state[CONFIG_STATE_KEY] = self.config

        own: list[ControllerRouterHandler] = [
            *job_route_handlers(engine),
            *queue_route_handlers(engine),
            *schedule_route_handlers(engine),
            health_route_handler(engine),
        ]
        extra = contributed_routes(host, app_config)
        paths = _route_paths(extra)
        if not any(p.startswith("/api/v1/webhooks") for p in paths):
            own.extend(webhooks_disabled_handlers())
        if "/api/v1/metrics/prometheus" not in paths:
            own.append(metrics_unavailable_handler())
        if self.standalone:
            own.extend(landing_route_handlers())

        middleware = [make_auth_middleware(host)] if host is not None else []
        app_config.route_handlers.append(
            Router(
                path="/",
                route_handlers=[*own, *extra],
                middleware=middleware,
                exception_handlers=ROUTE_EXCEPTION_HANDLERS,
            )
        )
        if self.standalone:
            app_config.exception_handlers = {**APP_EXCEPTION_HANDLERS, **app_config.exception_handlers}
        return app_config


def _max_body_bytes(config: Config | None) -> int:
    if config is None:
        return DEFAULT_MAX_BODY_BYTES
    value = config.get("http.max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    return int(value)


class _OpenAPIRouter(Router):
    """Serves the OpenAPI document and docs under ``/api/v1`` without Litestar's catch-all HTML 404
    page, so unknown ``/api/v1/...`` paths answer the JSON error envelope like every other path."""

    def register(self, value: ControllerRouterHandler) -> list[Any]:
        if "/{path:str}" in getattr(value, "paths", ()):
            return []
        return super().register(value)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title=API_TITLE,
        version=API_VERSION,
        description="Background jobs without infrastructure: the rustqueue HTTP API, wire-compatible "
        "with RustQueue 0.3.",
        license=License(name="MIT OR Apache-2.0", identifier="MIT OR Apache-2.0"),
        path="/api/v1",
        render_plugins=[ScalarRenderPlugin(path="/docs"), RequestBodyJsonRenderPlugin()],
        openapi_router=_OpenAPIRouter("/api/v1", route_handlers=[], include_in_schema=False),
    )


def create_app(
    engine: RustQueue,
    config: Config | None = None,
    *,
    extra_plugins: Sequence[Any] = (),
    debug: bool = False,
) -> Litestar:
    """A standalone Litestar app serving the rustqueue API for ``engine`` (not started here: the
    engine's lifecycle belongs to the caller)."""
    return Litestar(
        plugins=[RustQueuePlugin(engine, config, standalone=True), *extra_plugins],
        cors_config=CORSConfig(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]),
        openapi_config=openapi_config(),
        request_max_body_size=_max_body_bytes(config),
        exception_handlers=dict(APP_EXCEPTION_HANDLERS),
        debug=debug,
        logging_config=None,
    )
