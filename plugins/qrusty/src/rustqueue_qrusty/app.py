"""The Litestar application of the qrusty API: qrusty's HTTP routes at the root and ``/ws``.

Handlers read raw JSON (bodies are optional where qrusty's client sends none) and answer with
qrusty's shapes. Errors are JSON ``{"status": "error", "code", "message"}`` with a 4xx status, or 503
with ``Retry-After`` for conditions worth retrying (starting, memory pressure, shutting down).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, delete, get, post, websocket
from litestar.connection import WebSocket
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from rustqueue_http.fastresponse import JsonBytes, read_body

from rustqueue_core.errors import RustQueueError
from rustqueue_qrusty import model
from rustqueue_qrusty.logstream import LogHub
from rustqueue_qrusty.model import QrustyError, not_found
from rustqueue_qrusty.service import QrustyService, consumer_of, ids_of
from rustqueue_qrusty.ws import WsSession

logger = logging.getLogger("rustqueue.qrusty")

SERVICE_KEY = "qrusty_service"
LOGS_KEY = "qrusty_logs"
STARTING_MESSAGE = "Server is starting: storage is being loaded; retry shortly"
RETRY_AFTER_SECS = 2
MUTATING: dict[str, Any] = {"qrusty_mutating": True}
_encoder = msgspec.json.Encoder()


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    # JsonBytes goes straight to a two-message ASGI answer: Litestar's generic Response would rebuild
    # headers, cookies and content negotiation on every request.
    return JsonBytes(_encoder.encode(value), status, headers)


def _starting_response() -> Response[Any]:
    body = {"status": "starting", "message": STARTING_MESSAGE, "retry_after_secs": RETRY_AFTER_SECS}
    return _json(body, 503, {"Retry-After": str(RETRY_AFTER_SECS)})


def _service(request: Request[Any, Any, Any] | WebSocket[Any, Any, Any]) -> QrustyService:
    service: QrustyService = request.app.state[SERVICE_KEY]
    return service


def _path(request: Request[Any, Any, Any], name: str) -> str:
    """A path parameter, read from the scope: handlers taking only ``request`` skip Litestar's
    per-request signature model."""
    value: str = request.scope["path_params"][name]
    return value


async def _body(request: Request[Any, Any, Any]) -> Any:
    return model.decode_body(await read_body(request))


# --------------------------------------------------------------------------- errors and the gate


def qrusty_error_handler(_: Request[Any, Any, Any], exc: QrustyError) -> Response[Any]:
    if exc.code == "STARTING":
        return _starting_response()
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    return _json({"status": "error", "code": exc.code, "message": exc.message}, exc.status, headers)


def engine_error_handler(request: Request[Any, Any, Any], exc: RustQueueError) -> Response[Any]:
    return qrusty_error_handler(request, model.from_engine_error(exc))


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed for {request.url.path}"
    else:
        message = str(exc.detail)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(status, "BAD_REQUEST")
    if status >= 500:
        code = "INTERNAL"
    return _json({"status": "error", "code": code, "message": message}, status)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error in %s %s", request.method, request.url.path)
    return _json({"status": "error", "code": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"}, 500)


async def startup_gate(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Mutating routes answer 503 while the engine is still recovering (QRUSTY-PROTOCOL §0.2)."""
    if request.route_handler.opt.get("qrusty_mutating") and _service(request).engine.state == "starting":
        return _starting_response()
    return None


# --------------------------------------------------------------------------- health and queues


@get("/health")
async def health(request: Request[Any, Any, Any]) -> Response[Any]:
    service = _service(request)
    state = service.engine.state
    if state == "starting":
        return _json({"status": "starting", "message": STARTING_MESSAGE})
    body: dict[str, Any] = {"status": "ok" if state == "ready" else state}
    memory = service.memory_status()
    if memory["level"] != "normal":
        body["memory"] = memory
    return _json(body)


@post("/create-queue", status_code=200, opt=MUTATING)
async def create_queue(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(await _service(request).create_queue(await _body(request)))


@post("/update-queue", status_code=200, opt=MUTATING)
async def update_queue(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(await _service(request).update_queue(await _body(request)))


@delete("/delete-queue/{queue:str}", status_code=200, opt=MUTATING)
async def delete_queue(request: Request[Any, Any, Any]) -> Response[Any]:
    queue = _path(request, "queue")
    return _json(await _service(request).delete_queue(queue))


@post("/purge-queue/{queue:str}", status_code=200, opt=MUTATING)
async def purge_queue(request: Request[Any, Any, Any]) -> Response[Any]:
    queue = _path(request, "queue")
    return _json(await _service(request).purge_queue(queue))


@get("/queues")
async def list_queues(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(await _service(request).list_queues())


@post("/purge-all", status_code=200, opt=MUTATING)
async def purge_all(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(await _service(request).purge_all())


@post("/delete-all", status_code=200, opt=MUTATING)
async def delete_all(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(await _service(request).delete_all())


# --------------------------------------------------------------------------- messages


@post("/publish", status_code=200, opt=MUTATING)
async def publish(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(await _service(request).publish(await _body(request)))


@post("/consume/{queue:str}", status_code=200, opt=MUTATING)
async def consume(request: Request[Any, Any, Any]) -> Response[Any]:
    queue = _path(request, "queue")
    return _json(await _service(request).consume(queue, await _body(request)))


@post("/ack/{queue:str}/{message_id:str}", status_code=200, opt=MUTATING)
async def ack(request: Request[Any, Any, Any]) -> Response[Any]:
    queue, message_id = _path(request, "queue"), _path(request, "message_id")
    consumer = consumer_of(await _body(request))
    if not await _service(request).ack(queue, message_id, consumer):
        raise not_found(f"message '{message_id}' not found or not locked by consumer '{consumer}'")
    return _json({"status": "acked", "id": message_id})


@post("/nack/{queue:str}/{message_id:str}", status_code=200, opt=MUTATING)
async def nack(request: Request[Any, Any, Any]) -> Response[Any]:
    queue, message_id = _path(request, "queue"), _path(request, "message_id")
    consumer = consumer_of(await _body(request))
    outcome = await _service(request).nack(queue, message_id, consumer)
    if outcome is None:
        raise not_found(f"message '{message_id}' not found or not locked by consumer '{consumer}'")
    return _json(outcome)


@post("/ack-batch/{queue:str}", status_code=200, opt=MUTATING)
async def ack_batch(request: Request[Any, Any, Any]) -> Response[Any]:
    body = model.require_object(await _body(request))
    return _json(await _service(request).ack_batch(ids_of(body), consumer_of(body)))


@post("/nack-batch/{queue:str}", status_code=200, opt=MUTATING)
async def nack_batch(request: Request[Any, Any, Any]) -> Response[Any]:
    body = model.require_object(await _body(request))
    return _json(await _service(request).nack_batch(ids_of(body), consumer_of(body)))


# --------------------------------------------------------------------------- observability


@get("/stats")
async def stats(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(await _service(request).stats())


@get("/queue-stats/{queue:str}")
async def queue_stats(request: Request[Any, Any, Any]) -> Response[Any]:
    queue = _path(request, "queue")
    return _json(await _service(request).queue_stats(queue))


@get("/queues/{queue:str}/metrics")
async def queue_metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    queue = _path(request, "queue")
    return _json(await _service(request).queue_metrics(queue))


@get("/operation-timings")
async def operation_timings(request: Request[Any, Any, Any]) -> Response[Any]:
    return _json(_service(request).timings.snapshot())


@get("/logs")
async def recent_logs(request: Request[Any, Any, Any]) -> Response[Any]:
    """The most recent server log lines (what ``subscribe-logs`` streams), for a UI's first paint."""
    logs: LogHub | None = request.app.state.get(LOGS_KEY)
    return _json({"lines": list(logs.recent) if logs is not None else []})


@websocket("/ws")
async def ws_endpoint(socket: WebSocket[Any, Any, Any]) -> None:
    await WsSession(_service(socket), socket, socket.app.state.get(LOGS_KEY)).run()


ROUTES = [
    health,
    create_queue,
    update_queue,
    delete_queue,
    purge_queue,
    list_queues,
    purge_all,
    delete_all,
    publish,
    consume,
    ack,
    nack,
    ack_batch,
    nack_batch,
    stats,
    queue_stats,
    queue_metrics,
    operation_timings,
    recent_logs,
    ws_endpoint,
]


def create_app(service: QrustyService, logs: LogHub | None = None) -> Litestar:
    return Litestar(
        route_handlers=ROUTES,
        before_request=startup_gate,
        exception_handlers={
            QrustyError: qrusty_error_handler,
            RustQueueError: engine_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        state=State({SERVICE_KEY: service, LOGS_KEY: logs}),
        openapi_config=None,
        logging_config=None,  # the process owner configures logging; never replace its handlers
        debug=False,
    )
