"""Job routes: push, pull, ack, fail, cancel, progress, heartbeat, get, plus rustqueue's additions
(listing, batch ack, release, retry, promote, delete, explain).

Handlers read the raw body and decode it with msgspec once; responses are encoded straight to bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, cast

from litestar import Request, Response, delete, get, post
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter

from rustqueue_core.errors import ERRORS_BY_CODE, JobNotFound, RustQueueError, ValidationError
from rustqueue_http import schemas, wire
from rustqueue_http.fastresponse import JsonBytes, read_body

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from rustqueue_core.engine import RustQueue
    from rustqueue_core.models import BatchResult, Principal

AnyRequest: TypeAlias = Request[Any, Any, Any]
JSON = MediaType.JSON
OK_BODY = b'{"ok":true}'
PRINCIPAL_KEY = "rustqueue_principal"

ERRORS = {
    400: ResponseSpec(schemas.ErrorResponse, description="Validation error"),
    401: ResponseSpec(schemas.ErrorResponse, description="Missing or invalid bearer token"),
    404: ResponseSpec(schemas.ErrorResponse, description="Not found"),
    409: ResponseSpec(schemas.ErrorResponse, description="Invalid state or duplicate key"),
    422: ResponseSpec(schemas.ErrorResponse, description="Body of the wrong shape"),
    429: ResponseSpec(schemas.ErrorResponse, description="Rate limited or locked out"),
    503: ResponseSpec(schemas.ErrorResponse, description="Queue paused or server not ready"),
}


def json_response(payload: Any, status: int = 200) -> Response[Any]:
    return JsonBytes(wire.encode(payload), status)


def raw_json_response(body: bytes, status: int = 200) -> Response[Any]:
    return JsonBytes(body, status)


def ok_response(status: int = 200) -> Response[Any]:
    return JsonBytes(OK_BODY, status)


def raise_item_error(result: BatchResult) -> None:
    """Turn the failed item of a one-id batch call into an error response with its code's status."""
    for item in result.results:
        if not item.ok:
            code = item.error_code or "INTERNAL_ERROR"
            error_type = ERRORS_BY_CODE.get(code, RustQueueError)
            raise wire.WireError(code, error_type.status, item.error_message or code)


def parse_states(state: str | None) -> list[str] | None:
    if not state:
        return None
    return [part.strip() for part in state.split(",") if part.strip()]


def job_route_handlers(engine: RustQueue) -> list[HTTPRouteHandler]:
    """The job routes bound to ``engine`` (closures: no per-request engine lookup)."""

    @post(
        "/api/v1/queues/{queue:str}/jobs",
        status_code=201,
        summary="Push one job (object body) or a batch (array body)",
        description="Options are flattened next to `name` and `data`. An array body pushes atomically.",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def push_jobs(request: AnyRequest, queue: FromPath[str]) -> Response[schemas.PushResponse]:
        decoded = wire.decode_body(wire.PUSH_DECODER, await read_body(request))
        principal = cast("Principal | None", request.scope.get(PRINCIPAL_KEY))  # type: ignore[call-overload]
        if isinstance(decoded, list):
            ids = await engine.push_jobs([item.to_new_job(queue) for item in decoded], principal=principal)
            return json_response({"ok": True, "ids": ids}, status=201)
        ids = await engine.push_jobs([decoded.to_new_job(queue)], principal=principal)
        return raw_json_response(b'{"ok":true,"id":"' + ids[0].encode() + b'"}', status=201)

    @get(
        "/api/v1/queues/{queue:str}/jobs",
        summary="Pull (claim) jobs",
        description="`count` 1 (default) answers `job` (or null); any other count answers `jobs`. "
        "`wait_ms` long-polls. Each pulled job carries its `lease_token`.",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def pull_jobs(
        queue: FromPath[str],
        count: Annotated[int, QueryParameter(ge=0, le=4_294_967_295)] = 1,
        wait_ms: Annotated[int | None, QueryParameter(ge=0, le=300_000)] = None,
        lease_ms: Annotated[int | None, QueryParameter(ge=1)] = None,
        consumer_id: FromQuery[str | None] = None,
    ) -> Response[schemas.PullResponse]:
        wait = wait_ms / 1000 if wait_ms else None
        jobs = await engine.claim(queue, count, consumer_id=consumer_id, lease_ms=lease_ms, wait=wait)
        if count == 1:
            job = wire.job_to_wire(jobs[0], with_lease=True) if jobs else None
            return json_response({"ok": True, "job": job})
        return json_response({"ok": True, "jobs": wire.jobs_to_wire(jobs, with_lease=True)})

    @get("/api/v1/jobs/{job_id:str}", summary="Get a job", tags=["jobs"], responses=ERRORS)
    async def get_job(job_id: FromPath[str]) -> Response[schemas.JobResponse]:
        job_id = wire.check_job_id(job_id)
        job = await engine.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return json_response({"ok": True, "job": wire.job_to_wire(job)})

    @get(
        "/api/v1/jobs",
        summary="List jobs",
        description="Filter by queue, comma-separated states, flow, group or tag; page with `cursor`.",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def list_jobs(
        queue: FromQuery[str | None] = None,
        states: Annotated[str | None, QueryParameter(name="state")] = None,
        flow_id: FromQuery[str | None] = None,
        group_id: FromQuery[str | None] = None,
        tag: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=0, le=10_000)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> Response[schemas.JobListResponse]:
        jobs, next_cursor = await engine.list_jobs(
            queue,
            states=parse_states(states),
            flow_id=flow_id,
            group_id=group_id,
            tags=[tag] if tag else None,
            limit=limit,
            cursor=cursor,
        )
        return json_response({"ok": True, "jobs": wire.jobs_to_wire(jobs), "next_cursor": next_cursor})

    @post(
        "/api/v1/jobs/{job_id:str}/ack",
        status_code=200,
        summary="Acknowledge (complete) an active job",
        description='Body optional: `{"result": any}`; an empty body counts as no result.',
        tags=["jobs"],
        responses=ERRORS,
    )
    async def ack_job(request: AnyRequest, job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        job_id = wire.check_job_id(job_id)
        body = wire.decode_optional_body(wire.ACK_DECODER, await read_body(request))
        if body is None:
            await engine.ack(job_id)
        else:
            await engine.ack(job_id, body.result, token=body.lease_token)
        return ok_response()

    @post(
        "/api/v1/jobs/ack-batch",
        status_code=200,
        summary="Acknowledge many jobs",
        description='Body `{"items": [{"id", "result"?}]}` or `{"ids": [...]}`; one outcome per item.',
        tags=["jobs"],
        responses=ERRORS,
    )
    async def ack_batch(request: AnyRequest) -> Response[schemas.BatchAckResult]:
        body = wire.decode_body(wire.ACK_BATCH_DECODER, await read_body(request))
        items: list[dict[str, Any]]
        if body.items is not None:
            items = []
            for item in body.items:
                entry: dict[str, Any] = {"id": wire.check_job_id(item.id), "result": item.result}
                if item.lease_token is not None:
                    entry["token"] = item.lease_token
                items.append(entry)
        elif body.ids is not None:
            items = [{"id": wire.check_job_id(job_id)} for job_id in body.ids]
        else:
            raise ValidationError("Missing 'items' or 'ids' field for ack_batch")
        result = await engine.ack_batch(items)
        return json_response(wire.batch_outcomes(result))

    @post(
        "/api/v1/jobs/{job_id:str}/fail",
        status_code=200,
        summary="Report a failed delivery",
        description="Answers `retry` and, for a delayed retry, `next_attempt_at`.",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def fail_job(request: AnyRequest, job_id: FromPath[str]) -> Response[schemas.FailResponse]:
        job_id = wire.check_job_id(job_id)
        body = wire.decode_body(wire.FAIL_DECODER, await read_body(request))
        outcome = await engine.fail(
            job_id, body.error, token=body.lease_token, retry_delay_ms=body.retry_delay_ms, dead=body.dead
        )
        payload: dict[str, Any] = {"ok": True, "retry": outcome.will_retry}
        if outcome.next_attempt_at is not None:
            payload["next_attempt_at"] = wire.offset_timestamp(outcome.next_attempt_at)
        return json_response(payload)

    @post("/api/v1/jobs/{job_id:str}/cancel", status_code=200, summary="Cancel a job", tags=["jobs"], responses=ERRORS)
    async def cancel_job(job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        await engine.cancel(wire.check_job_id(job_id))
        return ok_response()

    @post(
        "/api/v1/jobs/{job_id:str}/progress",
        status_code=200,
        summary="Report progress (0-100, larger values are clamped) with an optional log message",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def progress_job(request: AnyRequest, job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        job_id = wire.check_job_id(job_id)
        body = wire.decode_body(wire.PROGRESS_DECODER, await read_body(request))
        if not 0 <= body.progress <= 255:
            raise wire.UnprocessableBody("progress must be an integer between 0 and 255")
        await engine.progress(job_id, body.progress, body.message, token=body.lease_token)
        return ok_response()

    @post(
        "/api/v1/jobs/{job_id:str}/heartbeat",
        status_code=200,
        summary="Extend an active job's lease",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def heartbeat_job(request: AnyRequest, job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        job_id = wire.check_job_id(job_id)
        token = wire.lenient_lease_token(await read_body(request))
        raise_item_error(await engine.heartbeat(job_id, token=token))
        return ok_response()

    @post(
        "/api/v1/jobs/{job_id:str}/release",
        status_code=200,
        tags=["jobs"],
        responses=ERRORS,
        summary="Return an active job to waiting without counting a failure",
    )
    async def release_job(request: AnyRequest, job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        job_id = wire.check_job_id(job_id)
        token = wire.lenient_lease_token(await read_body(request))
        raise_item_error(await engine.release(job_id, token=token))
        return ok_response()

    @post(
        "/api/v1/jobs/{job_id:str}/retry",
        status_code=200,
        summary="Send a dlq or cancelled job back to waiting",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def retry_job(job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        raise_item_error(await engine.retry(wire.check_job_id(job_id)))
        return ok_response()

    @post(
        "/api/v1/jobs/{job_id:str}/promote",
        status_code=200,
        summary="Make a delayed job waiting now",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def promote_job(job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        raise_item_error(await engine.promote(wire.check_job_id(job_id)))
        return ok_response()

    @delete(
        "/api/v1/jobs/{job_id:str}",
        status_code=200,
        summary="Delete a job in any state",
        tags=["jobs"],
        responses=ERRORS,
    )
    async def delete_job(job_id: FromPath[str]) -> Response[schemas.OkResponse]:
        job_id = wire.check_job_id(job_id)
        if await engine.delete_jobs(job_id) == 0:
            raise JobNotFound(job_id)
        return ok_response()

    @get("/api/v1/jobs/{job_id:str}/explain", summary="Why is this job not running?", tags=["jobs"], responses=ERRORS)
    async def explain_job(job_id: FromPath[str]) -> Response[schemas.ExplainResponse]:
        reasons = await engine.explain(wire.check_job_id(job_id))
        return json_response({"ok": True, "reasons": reasons})

    return [
        push_jobs,
        pull_jobs,
        get_job,
        list_jobs,
        ack_job,
        ack_batch,
        fail_job,
        cancel_job,
        progress_job,
        heartbeat_job,
        release_job,
        retry_job,
        promote_job,
        delete_job,
        explain_job,
    ]
