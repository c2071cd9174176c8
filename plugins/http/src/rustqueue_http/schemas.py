"""Types that describe the HTTP API in the OpenAPI document.

Handlers encode their responses directly (see ``wire``); these structs only give the generated
document its component schemas, named as the original's (Job, JobState, Schedule, QueueCounts …).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class JobState(StrEnum):
    created = "created"
    waiting = "waiting"
    delayed = "delayed"
    active = "active"
    completed = "completed"
    failed = "failed"
    dlq = "dlq"
    cancelled = "cancelled"
    blocked = "blocked"


class BackoffStrategy(StrEnum):
    fixed = "fixed"
    linear = "linear"
    exponential = "exponential"


class QueueOrdering(StrEnum):
    """Listed in the document as RustQueue 0.3 lists it; dequeue order is always priority, then FIFO."""

    fifo = "fifo"
    lifo = "lifo"
    priority = "priority"
    fair = "fair"


class LogEntry(msgspec.Struct, kw_only=True):
    timestamp: str
    message: str


class Job(msgspec.Struct, kw_only=True):
    """A job. Timestamps are RFC 3339 UTC strings ending in ``Z``; ``metadata`` is absent when unset.
    Pull responses add ``lease_token``."""

    id: str
    custom_id: str | None
    name: str
    queue: str
    data: Any
    result: Any
    state: JobState
    progress: int | None
    logs: list[LogEntry]
    priority: int | str
    delay_until: str | None
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    max_attempts: int
    attempt: int
    backoff: BackoffStrategy
    backoff_delay_ms: int
    last_error: str | None
    ttl_ms: int | None
    timeout_ms: int | None
    unique_key: str | None
    tags: list[str]
    group_id: str | None
    depends_on: list[str]
    flow_id: str | None
    lifo: bool
    remove_on_complete: bool
    remove_on_fail: bool
    worker_id: str | None
    last_heartbeat: str | None
    metadata: Any = None
    lease_token: str | None = None


class JobOptions(msgspec.Struct, kw_only=True):
    priority: int | str | None = None
    delay_ms: int | None = None
    max_attempts: int | None = None
    backoff: BackoffStrategy | None = None
    backoff_delay_ms: int | None = None
    ttl_ms: int | None = None
    timeout_ms: int | None = None
    unique_key: str | None = None
    tags: list[str] | None = None
    group_id: str | None = None
    lifo: bool | None = None
    remove_on_complete: bool | None = None
    remove_on_fail: bool | None = None
    custom_id: str | None = None
    metadata: Any = None
    depends_on: list[str] | None = None
    flow_id: str | None = None


class QueueCounts(msgspec.Struct, kw_only=True):
    waiting: int
    active: int
    delayed: int
    completed: int
    failed: int
    dlq: int
    blocked: int
    cancelled: int


class QueueInfo(msgspec.Struct, kw_only=True):
    name: str
    counts: QueueCounts
    paused: bool


class Schedule(msgspec.Struct, kw_only=True):
    name: str
    queue: str
    job_name: str
    job_data: Any
    job_options: JobOptions | None
    cron_expr: str | None
    every_ms: int | None
    timezone: str | None
    max_executions: int | None
    execution_count: int
    paused: bool
    last_run_at: str | None
    next_run_at: str | None
    created_at: str
    updated_at: str
    run_immediately: bool
    last_error: str | None


class JobEvent(msgspec.Struct, kw_only=True):
    """One WebSocket frame of ``/api/v1/events``."""

    event: str
    job_id: str
    queue: str
    timestamp: str


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: Any = None


class ErrorResponse(msgspec.Struct, kw_only=True):
    ok: bool
    error: ErrorDetail


class OkResponse(msgspec.Struct, kw_only=True):
    ok: bool


class PushResponse(msgspec.Struct, kw_only=True):
    """``id`` for a single push; ``ids`` (input order) for an array body."""

    ok: bool
    id: str | None = None
    ids: list[str] | None = None


class PullResponse(msgspec.Struct, kw_only=True):
    """``job`` when ``count`` is 1 or absent, ``jobs`` otherwise."""

    ok: bool
    job: Job | None = None
    jobs: list[Job] | None = None


class JobResponse(msgspec.Struct, kw_only=True):
    ok: bool
    job: Job


class JobListResponse(msgspec.Struct, kw_only=True):
    ok: bool
    jobs: list[Job]
    next_cursor: str | None = None


class FailResponse(msgspec.Struct, kw_only=True):
    """``next_attempt_at`` (``+00:00`` offset) is present only for a delayed retry."""

    ok: bool
    retry: bool
    next_attempt_at: str | None = None


class BatchAckItem(msgspec.Struct, kw_only=True):
    id: str
    ok: bool
    error: ErrorDetail | None = None


class BatchAckResult(msgspec.Struct, kw_only=True):
    ok: bool
    acked: int
    failed: int
    results: list[BatchAckItem]


class QueuesResponse(msgspec.Struct, kw_only=True):
    ok: bool
    queues: list[QueueInfo]


class StatsResponse(msgspec.Struct, kw_only=True):
    ok: bool
    counts: QueueCounts


class CountResponse(msgspec.Struct, kw_only=True):
    """Admin operations answer the number of jobs they touched under one key (``deleted``, ``purged``,
    ``retried``)."""

    ok: bool
    deleted: int | None = None
    purged: int | None = None
    retried: int | None = None


class FlowSummary(msgspec.Struct, kw_only=True):
    total: int
    waiting: int
    active: int
    blocked: int
    completed: int
    failed: int
    dlq: int


class FlowResponse(msgspec.Struct, kw_only=True):
    ok: bool
    flow_id: str
    jobs: list[Job]
    summary: FlowSummary


class ScheduleResponse(msgspec.Struct, kw_only=True):
    ok: bool
    schedule: Schedule


class SchedulesResponse(msgspec.Struct, kw_only=True):
    ok: bool
    schedules: list[Schedule]


class Explanation(msgspec.Struct, kw_only=True):
    code: str
    detail: str


class ExplainResponse(msgspec.Struct, kw_only=True):
    ok: bool
    reasons: list[Explanation]


class HealthResponse(msgspec.Struct, kw_only=True):
    ok: bool
    status: str
    version: str
    uptime_seconds: int
    state: str | None = None
