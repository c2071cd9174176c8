"""The hot HTTP routes of the qrusty API served straight from the HTTP protocol, coalesced per loop tick.

``POST /publish``, ``POST /consume/{queue}`` and ``POST /ack/{queue}/{id}`` are the whole workload of a
qrusty client's message loop. Each of them through the ASGI stack costs a request task, Litestar's
routing and middleware and two ASGI send events before the engine is even called. Here the protocol
hands a complete small request on one of these routes to :class:`FastRoutes` instead:

* requests that arrive in one event-loop iteration, on any connection, are served together at the next
  one: all their publishes in one ``publish_many`` (one atomic push, one storage transaction), all
  their acks in one ``ack_batch`` (one storage call), and their consumes side by side (the storage's group
  commit puts their claims in one transaction);
* each answer is written as one pre-assembled HTTP response on its own connection.

Everything else (other routes, other methods, bodies without a small ``Content-Length``, ``Expect:
100-continue``) goes to the Litestar application as before. The answers are those of the Litestar
handlers, byte for byte in the body: the same checks in the same order, the same startup gate, the
same error objects and status codes (404 for an ack of a message not locked by this consumer, ``null``
for an empty queue), and each request's effects are committed before its answer is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, cast

import msgspec
from rustqueue_http.transport import FastRouteProtocol, JsonResponseWriter, plain_body_length

from rustqueue_core.errors import RustQueueError
from rustqueue_qrusty import model
from rustqueue_qrusty.model import QrustyError, not_found
from rustqueue_qrusty.service import NOT_HELD, consumer_of

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from rustqueue_qrusty.service import QrustyService

logger = logging.getLogger("rustqueue.qrusty")

#: Largest request body served here; larger ones (and bodies without a length) take the ASGI path.
MAX_FAST_BODY = 65_536
STARTING_MESSAGE = "Server is starting: storage is being loaded; retry shortly"
RETRY_AFTER_SECS = 2
_PUBLISH, _CONSUME, _ACK = 1, 2, 3
_encode = msgspec.json.Encoder().encode
_NULL = b"null"
_STARTING_BODY = _encode({"status": "starting", "message": STARTING_MESSAGE, "retry_after_secs": RETRY_AFTER_SECS})
_STARTING_HEADERS = b"retry-after: %d\r\n" % RETRY_AFTER_SECS


def match(method: str, path: str) -> tuple[int, str, str] | None:
    """``(route, queue, message id)`` of a hot route, or None. Only the exact forms Litestar would route
    to the same handler (one non-empty segment per parameter, no trailing slash) are taken."""
    if method != "POST":
        return None
    if path == "/publish":
        return (_PUBLISH, "", "")
    if path.startswith("/consume/"):
        queue = path[9:]
        if queue and "/" not in queue:
            return (_CONSUME, queue, "")
        return None
    if path.startswith("/ack/"):
        queue, _, message_id = path[5:].partition("/")
        if queue and message_id and "/" not in message_id:
            return (_ACK, queue, message_id)
    return None


class FastRoutes:
    """Serves the hot routes for one qrusty server; requests of one loop tick are served together."""

    def __init__(self, service: QrustyService) -> None:
        self.service = service
        self.engine = service.engine
        self._publishes: list[tuple[RequestResponseCycle, Any]] = []
        self._acks: list[tuple[RequestResponseCycle, str, str, str]] = []
        self._consumes: list[tuple[RequestResponseCycle, str, Any]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._respond = JsonResponseWriter().respond

    # ------------------------------------------------------------------ intake
    def submit(self, cycle: RequestResponseCycle, route: tuple[int, str, str]) -> None:
        """One complete request: checked now, served at the next loop iteration. Nothing is answered
        from here, inside the parser's callback: an answer completes the cycle, which lets uvicorn start
        the next pipelined request and arm its keep-alive timer, as it does only after a response."""
        kind, queue, message_id = route
        loop = asyncio.get_running_loop()
        try:
            if self.engine.state == "starting":
                loop.call_soon(self._respond, cycle, 503, _STARTING_BODY, _STARTING_HEADERS)
                return
            body = model.decode_body(cycle.body)
            if kind == _PUBLISH:
                self._publishes.append((cycle, body))
            elif kind == _ACK:
                self._acks.append((cycle, queue, message_id, consumer_of(body)))
            else:
                self._consumes.append((cycle, queue, body))
        except Exception as exc:
            loop.call_soon(self._failure, cycle, exc)
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Start serving the tick's requests. Their tasks all reach the storage in the same loop iteration,
        so the storage commits the tick's pushes, claims and acks in one transaction."""
        self._scheduled = False
        if self._consumes:
            consumes, self._consumes = self._consumes, []
            for cycle, queue, body in consumes:
                self._spawn(self._consume(cycle, queue, body))
        if self._publishes:
            publishes, self._publishes = self._publishes, []
            self._spawn(self._publish(publishes))
        if self._acks:
            acks, self._acks = self._acks, []
            self._spawn(self._ack(acks))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the requests being served (at server stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ routes
    async def _publish(self, items: list[tuple[RequestResponseCycle, Any]]) -> None:
        try:
            if len(items) == 1:
                cycle, body = items[0]
                try:
                    outcomes: list[dict[str, Any] | QrustyError] = [await self.service.publish(body)]
                except QrustyError as exc:
                    outcomes = [exc]
            else:
                outcomes = await self.service.publish_many([body for _, body in items])
        except Exception as exc:
            for cycle, _ in items:
                self._failure(cycle, exc)
            return
        for (cycle, _), outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, QrustyError):
                self._error(cycle, outcome)
            else:
                self._respond(cycle, 200, _encode(outcome))

    async def _consume(self, cycle: RequestResponseCycle, queue: str, body: Any) -> None:
        try:
            message = await self.service.consume(queue, body)
        except Exception as exc:
            self._failure(cycle, exc)
            return
        self._respond(cycle, 200, _NULL if message is None else _encode(message))

    async def _ack(self, items: list[tuple[RequestResponseCycle, str, str, str]]) -> None:
        """Acks of one tick in one ``ack_batch`` (each item with its own consumer check); an id acked twice
        in the tick, and any item failing for another reason than "not held", is served on its own."""
        batch: list[tuple[RequestResponseCycle, str, str, str]] = []
        alone: list[tuple[RequestResponseCycle, str, str, str]] = []
        seen: set[str] = set()
        for item in items:
            if item[2] in seen:
                alone.append(item)
            else:
                seen.add(item[2])
                batch.append(item)
        if len(batch) == 1:
            alone.insert(0, batch.pop())
        if batch:
            started = time.perf_counter()
            try:
                result = await self.engine.ack_batch([{"id": i[2], "consumer_id": i[3]} for i in batch])
            except Exception as exc:
                error = model.from_engine_error(exc) if isinstance(exc, RustQueueError) else exc
                self.service.timings.record_many("ack", time.perf_counter() - started, len(batch), len(batch))
                for cycle, _, _, _ in batch:
                    self._failure(cycle, error)
            else:
                served = 0
                for (cycle, _, message_id, consumer), outcome in zip(batch, result.results, strict=True):
                    if outcome.ok:
                        served += 1
                        self._respond(cycle, 200, _encode({"status": "acked", "id": message_id}))
                    elif outcome.error_code in NOT_HELD:
                        served += 1
                        self._not_held(cycle, message_id, consumer)
                    else:  # served again on its own below, which records it
                        alone.append((cycle, "", message_id, consumer))
                self.service.timings.record_many("ack", time.perf_counter() - started, served)
        for cycle, queue, message_id, consumer in alone:
            try:
                acked = await self.service.ack(queue, message_id, consumer)
            except Exception as exc:
                self._failure(cycle, exc)
                continue
            if acked:
                self._respond(cycle, 200, _encode({"status": "acked", "id": message_id}))
            else:
                self._not_held(cycle, message_id, consumer)

    def _not_held(self, cycle: RequestResponseCycle, message_id: str, consumer: str) -> None:
        self._error(cycle, not_found(f"message '{message_id}' not found or not locked by consumer '{consumer}'"))

    # ------------------------------------------------------------------ answers
    def _failure(self, cycle: RequestResponseCycle, exc: BaseException) -> None:
        if isinstance(exc, QrustyError):
            self._error(cycle, exc)
        elif isinstance(exc, RustQueueError):
            self._error(cycle, model.from_engine_error(exc))
        else:
            scope = cycle.scope
            logger.error("unhandled error in %s %s", scope["method"], scope["path"], exc_info=exc)
            body = {"status": "error", "code": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"}
            self._respond(cycle, 500, _encode(body))

    def _error(self, cycle: RequestResponseCycle, exc: QrustyError) -> None:
        if exc.code == "STARTING":
            self._respond(cycle, 503, _STARTING_BODY, _STARTING_HEADERS)
            return
        headers = b"retry-after: %d\r\n" % exc.retry_after_s if exc.retry_after_s else b""
        body = _encode({"status": "error", "code": exc.code, "message": exc.message})
        self._respond(cycle, exc.status, body, headers)


class FastHttpProtocol(FastRouteProtocol):
    """The httptools protocol handing complete small requests on the hot routes to ``fast``."""

    fast: FastRoutes

    def fast_route(self, cycle: RequestResponseCycle) -> tuple[int, str, str] | None:
        scope = cycle.scope
        route = match(scope["method"], scope["path"])
        if route is None:
            return None
        length = plain_body_length(cast(list[tuple[bytes, bytes]], scope["headers"]), missing=-1)
        return route if 0 <= length <= MAX_FAST_BODY else None

    def fast_serve(self, cycle: RequestResponseCycle, route: tuple[int, str, str]) -> None:
        self.fast.submit(cycle, route)


def fast_protocol(fast: FastRoutes) -> type[FastHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to this server's routes."""
    return type("QrustyHttpProtocol", (FastHttpProtocol,), {"fast": fast})
