"""Queue, flow, schedule and health routes, plus the fallbacks answered when an optional plugin is absent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import Response, delete, get, post, route
from litestar.enums import HttpMethod, MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter

from rustqueue_http import schemas, wire
from rustqueue_http.fastresponse import read_body
from rustqueue_http.routes_jobs import ERRORS, AnyRequest, json_response, ok_response, raw_json_response

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from rustqueue_core.engine import RustQueue

#: Upper bound of one DLQ-retry pass; the route loops until the DLQ is empty or nothing moves.
DLQ_RETRY_CHUNK = 1_000


def queue_route_handlers(engine: RustQueue) -> list[HTTPRouteHandler]:
    @get("/api/v1/queues", summary="List queues with their counts", tags=["queues"], responses=ERRORS)
    async def list_queues() -> Response[schemas.QueuesResponse]:
        infos = await engine.queues()
        return json_response({"ok": True, "queues": [wire.queue_info_to_wire(info) for info in infos]})

    @get(
        "/api/v1/queues/{queue:str}/stats",
        summary="Counts of one queue (zeros when unknown)",
        tags=["queues"],
        responses=ERRORS,
    )
    async def queue_stats(queue: FromPath[str]) -> Response[schemas.StatsResponse]:
        counts = await engine.counts(queue)
        return json_response({"ok": True, "counts": wire.counts_to_wire(counts)})

    @get(
        "/api/v1/queues/{queue:str}/dlq",
        summary="Dead-letter jobs of a queue, most recent first",
        tags=["queues"],
        responses=ERRORS,
    )
    async def queue_dlq(
        queue: FromPath[str], limit: Annotated[int, QueryParameter(ge=0, le=4_294_967_295)] = 50
    ) -> Response[schemas.JobListResponse]:
        jobs = await engine.dlq(queue, limit)
        return json_response({"ok": True, "jobs": wire.jobs_to_wire(jobs)})

    @post(
        "/api/v1/queues/{queue:str}/dlq/retry",
        status_code=200,
        summary="Send dead-letter jobs back to waiting",
        description='Body optional: `{"ids": [...]}` retries those; without ids every DLQ job of the queue.',
        tags=["queues"],
        responses=ERRORS,
    )
    async def retry_dlq(request: AnyRequest, queue: FromPath[str]) -> Response[schemas.CountResponse]:
        body = wire.decode_optional_body(wire.IDS_DECODER, await read_body(request))
        retried = failed = 0
        if body is not None and body.ids is not None:
            result = await engine.retry([wire.check_job_id(job_id) for job_id in body.ids])
            retried, failed = result.ok, result.failed
        else:
            skipped: set[str] = set()
            while True:
                jobs = await engine.dlq(queue, DLQ_RETRY_CHUNK + len(skipped))
                ids = [job.id for job in jobs if job.id not in skipped]
                if not ids:
                    break
                result = await engine.retry(ids)
                retried += result.ok
                failed += result.failed
                skipped.update(item.id for item in result.results if not item.ok)
                if result.ok == 0:
                    break
        return json_response({"ok": True, "retried": retried, "failed": failed})

    @post(
        "/api/v1/queues/{queue:str}/pause",
        status_code=200,
        summary="Pause pushes to a queue",
        tags=["queues"],
        responses=ERRORS,
    )
    async def pause_queue(request: AnyRequest, queue: FromPath[str]) -> Response[schemas.OkResponse]:
        consume = request.query_params.get("consume", "").lower() in ("1", "true", "yes")
        await engine.pause_queue(queue, consume=consume)
        return ok_response()

    @post(
        "/api/v1/queues/{queue:str}/resume",
        status_code=200,
        summary="Resume a paused queue",
        tags=["queues"],
        responses=ERRORS,
    )
    async def resume_queue(queue: FromPath[str]) -> Response[schemas.OkResponse]:
        await engine.resume_queue(queue)
        return ok_response()

    @post(
        "/api/v1/queues/{queue:str}/purge",
        status_code=200,
        summary="Delete a queue's waiting, delayed and blocked jobs",
        description="`include_finished=true` also deletes completed, dlq and cancelled jobs. Active jobs stay.",
        tags=["queues"],
        responses=ERRORS,
    )
    async def purge_queue(
        queue: FromPath[str], include_finished: FromQuery[bool] = False
    ) -> Response[schemas.CountResponse]:
        purged = await engine.purge_queue(queue, include_finished=include_finished)
        return json_response({"ok": True, "purged": purged})

    @delete(
        "/api/v1/queues/{queue:str}",
        status_code=200,
        summary="Delete a queue: its configuration and every job, active ones included",
        tags=["queues"],
        responses=ERRORS,
    )
    async def delete_queue(queue: FromPath[str]) -> Response[schemas.CountResponse]:
        deleted = await engine.delete_queue(queue)
        return json_response({"ok": True, "deleted": deleted})

    @get(
        "/api/v1/flows/{flow_id:str}", summary="Jobs and per-state summary of a flow", tags=["flows"], responses=ERRORS
    )
    async def get_flow(flow_id: FromPath[str]) -> Response[schemas.FlowResponse]:
        return json_response(wire.flow_to_wire(await engine.flow(flow_id)))

    return [
        list_queues,
        queue_stats,
        queue_dlq,
        retry_dlq,
        pause_queue,
        resume_queue,
        purge_queue,
        delete_queue,
        get_flow,
    ]


def schedule_route_handlers(engine: RustQueue) -> list[HTTPRouteHandler]:
    @post(
        "/api/v1/schedules",
        status_code=201,
        summary="Create or replace a schedule",
        description="Requires `name`, `queue`, `job_name` and exactly one of `cron_expr` / `every_ms`.",
        tags=["schedules"],
        responses=ERRORS,
    )
    async def create_schedule(request: AnyRequest) -> Response[schemas.ScheduleResponse]:
        body = wire.decode_body(wire.SCHEDULE_DECODER, await read_body(request))
        schedule = await engine.create_schedule(body.to_fields())
        return json_response({"ok": True, "schedule": wire.schedule_to_wire(schedule)}, status=201)

    @get("/api/v1/schedules", summary="List schedules", tags=["schedules"], responses=ERRORS)
    async def list_schedules() -> Response[schemas.SchedulesResponse]:
        schedules = await engine.list_schedules()
        return json_response({"ok": True, "schedules": [wire.schedule_to_wire(s) for s in schedules]})

    @get("/api/v1/schedules/{name:str}", summary="Get a schedule", tags=["schedules"], responses=ERRORS)
    async def get_schedule(name: FromPath[str]) -> Response[schemas.ScheduleResponse]:
        schedule = await engine.get_schedule(name)
        return json_response({"ok": True, "schedule": wire.schedule_to_wire(schedule)})

    @delete(
        "/api/v1/schedules/{name:str}",
        status_code=200,
        summary="Delete a schedule (also when missing)",
        tags=["schedules"],
        responses=ERRORS,
    )
    async def delete_schedule(name: FromPath[str]) -> Response[schemas.OkResponse]:
        await engine.delete_schedule(name)
        return ok_response()

    @post(
        "/api/v1/schedules/{name:str}/pause",
        status_code=200,
        summary="Pause a schedule",
        tags=["schedules"],
        responses=ERRORS,
    )
    async def pause_schedule(name: FromPath[str]) -> Response[schemas.OkResponse]:
        await engine.pause_schedule(name)
        return ok_response()

    @post(
        "/api/v1/schedules/{name:str}/resume",
        status_code=200,
        summary="Resume a schedule",
        tags=["schedules"],
        responses=ERRORS,
    )
    async def resume_schedule(name: FromPath[str]) -> Response[schemas.OkResponse]:
        await engine.resume_schedule(name)
        return ok_response()

    return [create_schedule, list_schedules, get_schedule, delete_schedule, pause_schedule, resume_schedule]


def health_route_handler(engine: RustQueue) -> HTTPRouteHandler:
    @get("/api/v1/health", summary="Liveness and version", tags=["health"], opt={"rustqueue_public": True})
    async def health() -> Response[schemas.HealthResponse]:
        report = await engine.health()
        payload: dict[str, Any] = {
            "ok": True,
            # The original always says "healthy"; SDKs and probes compare against that word.
            "status": "healthy" if report.status == "ok" else report.status,
            "version": report.version,
            "uptime_seconds": report.uptime_seconds,
            "state": report.state,
            "memory_level": report.memory_level,
            "checks": report.checks,
        }
        return json_response(payload)

    return health


# --------------------------------------------------------------------------- fallbacks

_WEBHOOKS_DISABLED = wire.error_body("WEBHOOKS_DISABLED", "Webhooks are not enabled", with_details=False)
_DISABLED_SPEC = {503: ResponseSpec(schemas.ErrorResponse, description="Webhooks are not enabled")}


def webhooks_disabled_handlers() -> list[HTTPRouteHandler]:
    """What the webhook routes answer when no webhooks plugin provides them (as the original with
    ``[webhooks] enabled = false``)."""

    @route(
        "/api/v1/webhooks",
        http_method=[HttpMethod.GET, HttpMethod.POST],
        summary="Webhooks (disabled)",
        tags=["webhooks"],
        responses=_DISABLED_SPEC,
        status_code=503,
    )
    async def webhooks_collection() -> Response[schemas.ErrorResponse]:
        return raw_json_response(_WEBHOOKS_DISABLED, status=503)

    @route(
        "/api/v1/webhooks/{webhook_id:str}",
        http_method=[HttpMethod.GET, HttpMethod.DELETE],
        summary="Webhook (disabled)",
        tags=["webhooks"],
        responses=_DISABLED_SPEC,
        status_code=503,
    )
    async def webhooks_item(webhook_id: FromPath[str]) -> Response[schemas.ErrorResponse]:
        return raw_json_response(_WEBHOOKS_DISABLED, status=503)

    return [webhooks_collection, webhooks_item]


def metrics_unavailable_handler() -> HTTPRouteHandler:
    """Prometheus scrape path when no metrics plugin is loaded (the original's answer without a recorder)."""

    @get(
        "/api/v1/metrics/prometheus",
        summary="Prometheus metrics (not available)",
        tags=["metrics"],
        media_type=MediaType.TEXT,
        status_code=503,
        opt={"rustqueue_public": True},
    )
    async def metrics_unavailable() -> Response[str]:
        return Response("Metrics not available", status_code=503, media_type="text/plain; charset=utf-8")

    return metrics_unavailable
