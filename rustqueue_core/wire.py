"""Wire shapes shared by every transport (PROTOCOL.md §1): jobs, schedules, options, counts, outcomes.

A job goes out with the original's 33 keys in its order; every optional key is ``null`` except
``metadata``, which is left out when absent. Timestamps are RFC 3339 UTC with ``Z`` (msgspec's encoding of
aware UTC datetimes); ``next_attempt_at`` of a fail answer uses ``+00:00`` as the original does. Internal
fields never leave the process; the lease keys go out on pull answers only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from msgspec.structs import asdict

from rustqueue_core.models import BatchResult, Job, JobOptions, QueueCounts, Schedule

#: The original's job keys, in its order.
JOB_WIRE_FIELDS: tuple[str, ...] = (
    "id", "custom_id", "name", "queue", "data", "result", "state", "progress", "logs", "priority",
    "delay_until", "created_at", "updated_at", "started_at", "completed_at", "max_attempts", "attempt",
    "backoff", "backoff_delay_ms", "last_error", "ttl_ms", "timeout_ms", "unique_key", "tags", "group_id",
    "metadata", "depends_on", "flow_id", "lifo", "remove_on_complete", "remove_on_fail", "worker_id",
    "last_heartbeat",
)  # fmt: skip
#: Job fields that never go on the wire (the lease keys are added back on pull answers).
HIDDEN_JOB_FIELDS: tuple[str, ...] = tuple(f for f in Job.__struct_fields__ if f not in JOB_WIRE_FIELDS)
#: What a pull answer adds to each job: the delivery's fencing credential and its lease.
LEASE_WIRE_FIELDS: tuple[str, ...] = ("lease_token", "lease_ms", "lease_expires_at")
#: The original's count keys (it has no ``cancelled``); rustqueue adds ``cancelled`` where asked.
COUNT_WIRE_FIELDS: tuple[str, ...] = ("waiting", "active", "delayed", "completed", "failed", "dlq", "blocked")
SCHEDULE_WIRE_FIELDS: tuple[str, ...] = (
    "name", "queue", "job_name", "job_data", "job_options", "cron_expr", "every_ms", "timezone",
    "max_executions", "execution_count", "paused", "last_run_at", "next_run_at", "created_at", "updated_at",
)  # fmt: skip


def job_to_wire(job: Job, *, with_lease: bool = False) -> dict[str, Any]:
    wire = asdict(job)  # C-speed copy; dropping a few keys beats picking 33
    for key in HIDDEN_JOB_FIELDS:
        del wire[key]
    if wire["metadata"] is None:
        del wire["metadata"]
    if with_lease:
        for key in LEASE_WIRE_FIELDS:
            wire[key] = getattr(job, key)
    return wire


def jobs_to_wire(jobs: Iterable[Job], *, with_lease: bool = False) -> list[dict[str, Any]]:
    return [job_to_wire(job, with_lease=with_lease) for job in jobs]


def options_to_wire(options: JobOptions | None) -> dict[str, Any] | None:
    """A schedule's ``job_options``: every key, ``null`` when unset, except ``metadata`` (left out)."""
    if options is None:
        return None
    wire = asdict(options)
    if wire["metadata"] is None:
        del wire["metadata"]
    return wire


def schedule_to_wire(schedule: Schedule, *, extended: bool = True) -> dict[str, Any]:
    """The original's schedule keys; ``extended`` adds rustqueue's (``run_immediately``, ``last_error``)."""
    wire = asdict(schedule)
    wire["job_options"] = options_to_wire(schedule.job_options)
    if not extended:
        wire = {key: wire[key] for key in SCHEDULE_WIRE_FIELDS}
    return wire


def counts_to_wire(counts: QueueCounts, *, with_cancelled: bool = False) -> dict[str, int]:
    wire = {key: getattr(counts, key) for key in COUNT_WIRE_FIELDS}
    if with_cancelled:
        wire["cancelled"] = counts.cancelled
    return wire


def offset_timestamp(value: datetime | None) -> str | None:
    """``next_attempt_at`` as the original prints it: RFC 3339 with a ``+00:00`` offset."""
    return value.isoformat() if value is not None else None


def batch_outcomes(result: BatchResult) -> dict[str, Any]:
    """Per-item outcomes in the original's TCP ``ack_batch`` shape."""
    results: list[dict[str, Any]] = []
    for item in result.results:
        if item.ok:
            results.append({"id": item.id, "ok": True})
        else:
            error = {"code": item.error_code, "message": item.error_message}
            results.append({"id": item.id, "ok": False, "error": error})
    return {"ok": result.failed == 0, "acked": result.ok, "failed": result.failed, "results": results}
