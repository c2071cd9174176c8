"""The dashboard's JSON API under ``<prefix>/api``: what the ``/api/v1`` routes do not offer, built on
the engine directly. Every handler is marked protected, so an active auth plugin checks the bearer
token whatever the prefix is."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from rustqueue_http import wire
from rustqueue_http.fastresponse import JsonBytes
from rustqueue_http.routes_jobs import PRINCIPAL_KEY

from rustqueue_core.errors import JobNotFound, QueueNotFound, ValidationError
from rustqueue_core.storage import JobFilter
from rustqueue_dashboard import views
from rustqueue_dashboard.state import DashboardState

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from rustqueue_core.engine import RustQueue

PROTECTED = {"rustqueue_protected": True}
MAX_CHILDREN = 200
MAX_LOG_LINES = 1000


def _json(payload: Any, status: int = 200) -> Response[Any]:
    return JsonBytes(wire.encode(payload), status)


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    parts = [part.strip() for part in value.split(",") if part.strip()]
    return parts or None


def api_route_handlers(engine: RustQueue, state: DashboardState, prefix: str) -> list[HTTPRouteHandler]:
    api = prefix + "/api"
    common: dict[str, Any] = {"opt": PROTECTED, "include_in_schema": False}

    async def queue_exists(name: str) -> bool:
        return any(info.name == name for info in await engine.queues())

    @get(api + "/session", **common)
    async def session(request: Request[Any, Any, Any]) -> Response[Any]:
        """Who the caller is: the page's first call, so that it signs in before anything else."""
        principal = request.scope.get(PRINCIPAL_KEY)  # type: ignore[call-overload]
        name = getattr(principal, "name", "anonymous")
        anonymous = principal is None or bool(getattr(principal, "anonymous", False))
        return _json({"ok": True, "principal": name, "anonymous": anonymous})

    @get(api + "/overview", **common)
    async def overview() -> Response[Any]:
        health = await engine.health()
        stats = await engine.stats()
        rows = [views.queue_row(row, await engine.get_queue_config(row.name)) for row in stats]
        schedules = await engine.list_schedules()
        if not state.sampling_in_background:
            await state.sampler.sample_if_stale()
        return _json(
            {
                "ok": True,
                "version": health.version,
                "status": health.status,
                "state": health.state,
                "uptime_seconds": health.uptime_seconds,
                "memory_level": health.memory_level,
                "queues": rows,
                "totals": views.totals(rows),
                "schedules": views.schedule_counts(schedules),
                "sample_interval_s": state.sampler.interval_s,
            }
        )

    @get(api + "/queues/{queue:str}/series", **common)
    async def queue_series(queue: FromPath[str]) -> Response[Any]:
        if not state.sampling_in_background:
            await state.sampler.sample_if_stale()
        return _json(
            {
                "ok": True,
                "queue": queue,
                "interval_s": state.sampler.interval_s,
                "points": state.sampler.points_of(queue),
            }
        )

    @get(api + "/jobs", **common)
    async def list_jobs(
        queue: FromQuery[str | None] = None,
        state_filter: Annotated[str | None, QueryParameter(name="state")] = None,
        flow_id: FromQuery[str | None] = None,
        group_id: FromQuery[str | None] = None,
        tags: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 25,
        cursor: FromQuery[str | None] = None,
    ) -> Response[Any]:
        jobs, next_cursor = await engine.list_jobs(
            queue or None,
            states=_split(state_filter),
            flow_id=flow_id or None,
            group_id=group_id or None,
            tags=_split(tags),
            limit=limit,
            cursor=cursor or None,
        )
        return _json({"ok": True, "jobs": [views.job_row(j) for j in jobs], "next_cursor": next_cursor})

    @get(api + "/jobs/{job_id:str}", **common)
    async def job_detail(job_id: FromPath[str]) -> Response[Any]:
        job_id = wire.check_job_id(job_id)
        job = await engine.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        reasons = await engine.explain(job_id)
        parents = await engine.get_jobs(job.depends_on) if job.depends_on else []
        children, more = await engine.storage.find_jobs(JobFilter(children_of=[job_id]), MAX_CHILDREN)
        detail = views.job_detail(job, reasons, parents, children, more is not None)
        return _json({"ok": True, **detail})

    @post(api + "/queues", status_code=201, **common)
    async def create_queue(request: Request[Any, Any, Any]) -> Response[Any]:
        body = wire.decode_body(views.CREATE_QUEUE_DECODER, await request.body())
        config = await engine.create_queue(body.name, **body.settings())
        return _json({"ok": True, "name": config.name, "config": views.config_view(config)}, 201)

    @post(api + "/queues/{queue:str}/update", status_code=200, **common)
    async def update_queue(request: Request[Any, Any, Any], queue: FromPath[str]) -> Response[Any]:
        body = wire.decode_body(views.UPDATE_QUEUE_DECODER, await request.body())
        if body.name is None and body.allow_duplicates is None:
            raise ValidationError("nothing to change: give a new name and/or allow_duplicates")
        target = queue
        if body.name is not None and body.name != queue:
            await engine.rename_queue(queue, body.name)
            target = body.name
        elif not await queue_exists(queue):
            raise QueueNotFound(queue)
        if body.allow_duplicates is not None:
            await engine.configure_queue(target, allow_duplicates=body.allow_duplicates)
        config = await engine.get_queue_config(target)
        return _json({"ok": True, "name": target, "config": views.config_view(config)})

    @post(api + "/queues/{queue:str}/publish", status_code=201, **common)
    async def publish(request: Request[Any, Any, Any], queue: FromPath[str]) -> Response[Any]:
        body = wire.decode_body(views.PUBLISH_DECODER, await request.body())
        config = await engine.get_queue_config(queue)
        priority = views.check_priority(body.priority, config)
        options = views.publish_options(priority, body.max_retries)
        job_id = await engine.push(queue, views.MESSAGE_JOB_NAME, body.payload, **options)
        return _json({"ok": True, "id": job_id}, 201)

    @post(api + "/queues/{queue:str}/consume", status_code=200, **common)
    async def consume(request: Request[Any, Any, Any], queue: FromPath[str]) -> Response[Any]:
        body = wire.decode_optional_body(views.CONSUME_DECODER, await request.body()) or views.ConsumeBody()
        if not 1 <= body.timeout_seconds <= 86_400:
            raise ValidationError("timeout_seconds must be between 1 and 86400")
        jobs = await engine.claim(
            queue, 1, consumer_id=body.consumer_id or "dashboard", lease_ms=body.timeout_seconds * 1000
        )
        return _json({"ok": True, "message": views.message_view(jobs[0]) if jobs else None})

    @post(api + "/messages/{job_id:str}/ack", status_code=200, **common)
    async def ack_message(request: Request[Any, Any, Any], job_id: FromPath[str]) -> Response[Any]:
        body = wire.decode_body(views.SETTLE_DECODER, await request.body())
        await engine.ack(wire.check_job_id(job_id), token=body.lease_token)
        return _json({"ok": True})

    @post(api + "/messages/{job_id:str}/nack", status_code=200, **common)
    async def nack_message(request: Request[Any, Any, Any], job_id: FromPath[str]) -> Response[Any]:
        body = wire.decode_body(views.SETTLE_DECODER, await request.body())
        result = await engine.nack(wire.check_job_id(job_id), token=body.lease_token)
        return _json({"ok": True, "requeued": result.will_retry, "state": result.state})

    @get(api + "/logs", **common)
    async def logs(
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LOG_LINES)] = 200,
    ) -> Response[Any]:
        lines, last = state.logs.since(after, limit)
        capturing = state.logs in logging.getLogger().handlers
        return _json({"ok": True, "lines": lines, "last": last, "capturing": capturing})

    return [
        session,
        overview,
        queue_series,
        list_jobs,
        job_detail,
        create_queue,
        update_queue,
        publish,
        consume,
        ack_message,
        nack_message,
        logs,
    ]
