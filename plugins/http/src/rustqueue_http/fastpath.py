"""The three hot job routes served straight from the HTTP protocol, with the Litestar handlers' answers.

``POST /api/v1/queues/{queue}/jobs`` (push), ``GET /api/v1/queues/{queue}/jobs`` (pull) and ``POST
/api/v1/jobs/{id}/ack`` are the whole message loop of a client. Through the ASGI stack each of them
costs Litestar's exception and CORS middleware, routing, the scope state, the parameter model and two
ASGI send events around an engine call that is cheaper than all of these together. Here the protocol
hands a complete, plain request on one of these routes to :class:`FastRoutes`, which runs the same steps
the Litestar route would (the auth middleware's ``authenticate`` / ``authorize``, the handler's body
checks and engine call) and writes the same response bytes uvicorn would.

Only requests Litestar would route to those handlers with nothing else in between are taken: exactly
these paths (a canonical job id for ack), no ``Origin`` header (CORS), no ``Expect`` header, a body with
a small ``Content-Length`` (none on pull), and a pull query of plain ``count``/``wait_ms``/``lease_ms``/
``consumer_id`` values within the declared bounds. Anything else, and every request of an app that has
extra middleware or hooks (the metrics plugin's timing middleware, for one), goes to Litestar as before.
Errors are answered by the route's own exception handlers and rendered by Litestar.
"""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING, Any, cast

from litestar.middleware._internal.exceptions.middleware import get_exception_handler

from rustqueue_http import wire
from rustqueue_http.app import _credentials, request_action
from rustqueue_http.routes_jobs import OK_BODY, PRINCIPAL_KEY
from rustqueue_http.transport import FastRouteProtocol, JsonResponseWriter, plain_body_length

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.handlers import HTTPRouteHandler
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from rustqueue_core.engine import RustQueue
    from rustqueue_core.plugins import PluginHost

logger = logging.getLogger("rustqueue.http")

#: Largest request body served here; larger ones (and bodies without a length) take the ASGI path.
MAX_FAST_BODY = 65_536
_PUSH, _PULL, _ACK = 1, 2, 3
_QUEUES = "/api/v1/queues/"
_JOBS = "/api/v1/jobs/"
_PATHS = {
    _PUSH: ("/api/v1/queues/{queue:str}/jobs", "POST"),
    _PULL: ("/api/v1/queues/{queue:str}/jobs", "GET"),
    _ACK: ("/api/v1/jobs/{job_id:str}/ack", "POST"),
}
_JOB_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: Pull parameters: name → (lowest, highest) accepted here; values outside go to Litestar's validation.
_PULL_BOUNDS = {"count": (0, 4_294_967_295), "wait_ms": (0, 300_000), "lease_ms": (1, math.inf)}
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.~-]+")
_CREATED = b'{"ok":true,"id":"'
#: Requests with these headers go to Litestar: CORS (``origin``) and ``expect``.
_REFUSED_HEADERS = (b"origin", b"expect")


def match(method: str, path: str) -> tuple[int, str] | None:
    """``(route, queue or job id)`` of a hot route, or None. Only the exact forms Litestar routes to the
    same handler are taken (one non-empty segment per parameter, no trailing slash)."""
    if path.startswith(_QUEUES):
        if not path.endswith("/jobs") or (method != "POST" and method != "GET"):
            return None
        queue = path[15:-5]
        if not queue or "/" in queue:
            return None
        return (_PUSH if method == "POST" else _PULL), queue
    if method == "POST" and path.startswith(_JOBS) and path.endswith("/ack"):
        job_id = path[13:-4]
        if len(job_id) == 36 and _JOB_ID.fullmatch(job_id) is not None:
            return _ACK, job_id
    return None


def pull_query(query: bytes) -> tuple[int, int | None, int | None, str | None] | None:
    """``(count, wait_ms, lease_ms, consumer_id)`` of a plain pull query, or None for Litestar to parse."""
    values: dict[str, Any] = {}
    if query:
        try:
            text = query.decode("ascii")
        except UnicodeDecodeError:
            return None
        for part in text.split("&"):
            name, sep, value = part.partition("=")
            if not sep or name in values or _PLAIN_VALUE.fullmatch(value) is None:
                return None
            if name == "consumer_id":
                values[name] = value
                continue
            bounds = _PULL_BOUNDS.get(name)
            if bounds is None or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
                return None
            number = int(value)
            if not bounds[0] <= number <= bounds[1]:
                return None
            values[name] = number
    return values.get("count", 1), values.get("wait_ms"), values.get("lease_ms"), values.get("consumer_id")


class FastRoutes:
    """Serves push, pull and ack of one Litestar app built by ``create_app``."""

    def __init__(self, engine: RustQueue, app: Litestar, handlers: dict[int, HTTPRouteHandler]) -> None:
        self.engine = engine
        self.app = app
        self.handlers = handlers
        self.host: PluginHost | None = getattr(engine, "host", None)
        limits = [h.resolve_request_max_body_size() for h in handlers.values()]
        # At most uvicorn's read-pause mark (64 KiB): a body that size arrives without pausing the reads.
        self.max_body = min([MAX_FAST_BODY, *(limit for limit in limits if limit is not None)])
        self._respond = JsonResponseWriter().respond

    @classmethod
    def for_app(cls, engine: RustQueue, app: Litestar) -> FastRoutes | None:
        """The fast routes of ``app``, or None when anything could make Litestar answer differently
        (app middleware, hooks, extra response headers, or another route on these paths)."""
        if (
            app.middleware
            or app.before_request
            or app.after_request
            or app.after_response
            or app.after_exception
            or app.before_send
            or app.guards
            or app.response_headers
            or app.response_cookies
            or app.pdb_on_exception
        ):
            return None
        wanted = {path for path, _ in _PATHS.values()}
        handlers: dict[int, HTTPRouteHandler] = {}
        for route in app.routes:
            if route.path not in wanted:
                if match("POST", route.path) or match("GET", route.path):
                    return None  # another route that these paths could reach
                continue
            for kind, (path, method) in _PATHS.items():
                if path == route.path:
                    entry = getattr(route, "route_handler_map", {}).get(method)
                    if entry is None:
                        return None
                    handlers[kind] = cast("HTTPRouteHandler", entry[0] if isinstance(entry, tuple) else entry)
        if len(handlers) != len(_PATHS):
            return None
        host = getattr(engine, "host", None)
        for handler in handlers.values():
            if (
                handler.resolve_guards()
                or len(handler.resolve_middleware()) != (0 if host is None else 1)
                or handler.resolve_response_headers()
                or handler.resolve_response_cookies()
                or handler.resolve_before_request()
                or handler.resolve_after_response()
                or handler.opt
            ):
                return None
        return cls(engine, app, handlers)

    # ------------------------------------------------------------------ intake
    def take(self, cycle: RequestResponseCycle) -> tuple[int, str, Any] | None:
        """The route of a request this object serves, or None (Litestar serves it)."""
        scope = cycle.scope
        route = match(scope["method"], scope["path"])
        if route is None:
            return None
        length = plain_body_length(cast("list[tuple[bytes, bytes]]", scope["headers"]), _REFUSED_HEADERS)
        if length < 0 or length > self.max_body:
            return None
        kind, target = route
        if kind == _PULL:
            query = pull_query(scope["query_string"])
            return None if query is None or length else (kind, target, query)
        return kind, target, None

    async def serve(self, cycle: RequestResponseCycle, kind: int, target: str, query: Any) -> None:
        try:
            principal = self._authenticate(cycle) if self.host is not None else None
            if kind == _PUSH:
                decoded = wire.decode_body(wire.PUSH_DECODER, bytes(cycle.body))
                engine = self.engine
                if isinstance(decoded, list):
                    ids = await engine.push_jobs([item.to_new_job(target) for item in decoded], principal=principal)
                    self._respond(cycle, 201, wire.encode({"ok": True, "ids": ids}))
                else:
                    ids = await engine.push_jobs([decoded.to_new_job(target)], principal=principal)
                    self._respond(cycle, 201, _CREATED + ids[0].encode() + b'"}')
            elif kind == _PULL:
                count, wait_ms, lease_ms, consumer_id = query
                wait = wait_ms / 1000 if wait_ms else None
                jobs = await self.engine.claim(target, count, consumer_id=consumer_id, lease_ms=lease_ms, wait=wait)
                if count == 1:
                    job = wire.job_to_wire(jobs[0], with_lease=True) if jobs else None
                    self._respond(cycle, 200, wire.encode({"ok": True, "job": job}))
                else:
                    self._respond(
                        cycle, 200, wire.encode({"ok": True, "jobs": wire.jobs_to_wire(jobs, with_lease=True)})
                    )
            else:
                job_id = wire.check_job_id(target)
                body = wire.decode_optional_body(wire.ACK_DECODER, bytes(cycle.body))
                if body is None:
                    await self.engine.ack(job_id)
                else:
                    await self.engine.ack(job_id, body.result, token=body.lease_token)
                self._respond(cycle, 200, OK_BODY)
        except Exception as exc:
            await self._error(cycle, kind, exc)

    def _authenticate(self, cycle: RequestResponseCycle) -> Any:
        """What the auth middleware does for these (protected) paths."""
        from rustqueue_core.errors import Forbidden

        host = cast("PluginHost", self.host)
        scope: Any = cycle.scope
        principal = host.authenticate(_credentials(scope))
        scope[PRINCIPAL_KEY] = principal
        action, queue = request_action(scope["method"], scope["path"])
        if not host.authorize(principal, action, queue):
            raise Forbidden(action, queue)
        return principal

    # ------------------------------------------------------------------ answers

    async def _error(self, cycle: RequestResponseCycle, kind: int, exc: Exception) -> None:
        """The route's exception handler answers, rendered by Litestar, sent through uvicorn."""
        if cycle.disconnected or cycle.response_complete:
            return
        handler = self.handlers[kind]
        scope: Any = cycle.scope
        scope["litestar_app"] = self.app
        scope["route_handler"] = handler
        exception_handler = get_exception_handler(handler.resolve_exception_handlers(), exc)
        if exception_handler is None:  # pragma: no cover - the routes map Exception
            raise exc
        receive: Any = cycle.receive
        send: Any = cycle.send
        request = self.app.request_class(scope=scope, receive=receive, send=send)
        response = exception_handler(request, exc)
        asgi_response = response.to_asgi_response(
            app=None, request=request, type_encoders=handler.resolve_type_encoders()
        )
        await asgi_response(scope, receive, send)


class FastHttpProtocol(FastRouteProtocol):
    """The coalescing httptools protocol handing complete plain requests on the hot routes to ``fast``."""

    fast: FastRoutes

    def fast_route(self, cycle: RequestResponseCycle) -> tuple[int, str, Any] | None:
        return self.fast.take(cycle)

    def fast_serve(self, cycle: RequestResponseCycle, route: tuple[int, str, Any]) -> None:
        self._serve(cycle, route)

    def _serve(self, cycle: RequestResponseCycle, route: tuple[int, str, Any]) -> None:
        task = self.loop.create_task(self._run(cycle, route))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _run(self, cycle: RequestResponseCycle, route: tuple[int, str, Any]) -> None:
        try:
            await self.fast.serve(cycle, *route)
        except BaseException as exc:
            # What uvicorn does when an ASGI app fails.
            logger.error("Exception in ASGI application", exc_info=exc)
            if not cycle.response_started:
                await cycle.send_500_response()
            else:
                cycle.transport.close()
        finally:
            cycle.on_response = lambda: None


def fast_protocol(fast: FastRoutes) -> type[FastHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to this app's fast routes."""
    return type("RustQueueHttpProtocol", (FastHttpProtocol,), {"fast": fast})
