"""JSON shapes of the dashboard API, built from engine objects (no web framework imported here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from rustqueue_http import wire

from rustqueue_core.errors import ValidationError
from rustqueue_core.models import Explanation, Job, QueueConfig, QueueStats, Schedule

#: Job name of test messages published from the dashboard: the one qrusty's publish uses, so they are
#: indistinguishable from messages published through the qrusty API.
MESSAGE_JOB_NAME = "qrusty.message"
MAX_U64 = 2**64 - 1
ORDERINGS = ("max_first", "min_first", "fifo", "lifo")
PRIORITY_KINDS = ("numeric", "text")
#: qrusty's spellings, accepted as well.
ORDERING_ALIASES = {"MaxFirst": "max_first", "MinFirst": "min_first", "Fifo": "fifo", "Lifo": "lifo"}
KIND_ALIASES = {"Numeric": "numeric", "Text": "text"}
_ERROR_PREVIEW = 200
_encoder = msgspec.json.Encoder()


# --------------------------------------------------------------------------- request bodies


class CreateQueueBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    ordering: str = "max_first"
    priority_kind: str = "numeric"
    allow_duplicates: bool = True

    def settings(self) -> dict[str, Any]:
        ordering = ORDERING_ALIASES.get(self.ordering, self.ordering)
        if ordering not in ORDERINGS:
            raise ValidationError(f"ordering must be one of {', '.join(ORDERINGS)} (got {self.ordering!r})")
        kind = KIND_ALIASES.get(self.priority_kind, self.priority_kind)
        if kind not in PRIORITY_KINDS:
            raise ValidationError(f"priority_kind must be numeric or text (got {self.priority_kind!r})")
        return {"ordering": ordering, "priority_kind": kind, "allow_duplicates": self.allow_duplicates}


class UpdateQueueBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    allow_duplicates: bool | None = None


class PublishBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    payload: str
    priority: int | str | None = None
    max_retries: int = 3


class ConsumeBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    consumer_id: str = "dashboard"
    timeout_seconds: int = 30


class SettleBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    lease_token: str


CREATE_QUEUE_DECODER = msgspec.json.Decoder(CreateQueueBody)
UPDATE_QUEUE_DECODER = msgspec.json.Decoder(UpdateQueueBody)
PUBLISH_DECODER = msgspec.json.Decoder(PublishBody)
CONSUME_DECODER = msgspec.json.Decoder(ConsumeBody)
SETTLE_DECODER = msgspec.json.Decoder(SettleBody)


def check_priority(priority: int | str | None, config: QueueConfig) -> int | str:
    """A test message's priority must match the queue's kind (numeric: 0 … 2^64−1, as qrusty)."""
    if config.priority_kind == "text":
        if priority is None:
            return ""
        if not isinstance(priority, str):
            raise ValidationError(f"queue '{config.name}' has text priorities: priority must be a string")
        return priority
    if priority is None:
        return 0
    if isinstance(priority, str):
        try:
            priority = int(priority.strip())
        except ValueError:
            raise ValidationError(
                f"queue '{config.name}' has numeric priorities: priority must be an integer"
            ) from None
    if not 0 <= priority <= MAX_U64:
        raise ValidationError(f"priority must be between 0 and {MAX_U64}")
    return priority


def publish_options(priority: int | str, max_retries: int) -> dict[str, Any]:
    """``push`` keywords of a qrusty-style publish (SEMANTICS §4.2): retries without backoff."""
    if not 0 <= max_retries < 2**32 - 1:
        raise ValidationError("max_retries must be a non-negative integer")
    return {"priority": priority, "max_attempts": max_retries + 1, "backoff": "fixed", "backoff_delay_ms": 0}


# --------------------------------------------------------------------------- responses


def rfc3339(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def config_view(config: QueueConfig) -> dict[str, Any]:
    return {
        "ordering": config.ordering,
        "priority_kind": config.priority_kind,
        "allow_duplicates": config.allow_duplicates,
        "lease_ms": config.lease_ms,
        "rate_limit_per_second": config.rate_limit_per_second,
        "group_concurrency": config.group_concurrency,
        "created_at": rfc3339(config.created_at),
    }


def queue_row(stats: QueueStats, config: QueueConfig) -> dict[str, Any]:
    counts = wire.counts_to_wire(stats.counts)
    return {
        "name": stats.name,
        "counts": counts,
        "total": stats.counts.total,
        "pending": stats.pending,
        "locked": stats.locked,
        "published": stats.published,
        "acked": stats.acked,
        "nacked": stats.nacked,
        "failed": stats.failed,
        "dead": stats.dead,
        "publish_rate_per_sec": round(stats.publish_rate_per_sec, 3),
        "ack_rate_per_sec": round(stats.ack_rate_per_sec, 3),
        "paused": stats.paused,
        "consume_paused": stats.consume_paused,
        "config": config_view(config),
    }


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {key: 0 for key in wire.COUNT_KEYS}
    for row in rows:
        for key in wire.COUNT_KEYS:
            out[key] += row["counts"][key]
    # The original's "Total" card leaves blocked (and cancelled) out.
    out["total"] = sum(out[k] for k in ("waiting", "active", "completed", "failed", "dlq", "delayed"))
    out["queues"] = len(rows)
    out["publish_rate_per_sec"] = round(sum(r["publish_rate_per_sec"] for r in rows), 3)
    out["ack_rate_per_sec"] = round(sum(r["ack_rate_per_sec"] for r in rows), 3)
    return out


def job_row(job: Job) -> dict[str, Any]:
    """A job as one line of a listing: no data, result or logs."""
    error = job.last_error
    if error is not None and len(error) > _ERROR_PREVIEW:
        error = error[:_ERROR_PREVIEW] + "…"
    return {
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "state": job.state,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "progress": job.progress,
        "tags": job.tags,
        "flow_id": job.flow_id,
        "group_id": job.group_id,
        "depends_on": len(job.depends_on),
        "last_error": error,
        "created_at": rfc3339(job.created_at),
        "updated_at": rfc3339(job.updated_at),
    }


def job_detail(
    job: Job,
    reasons: Sequence[Explanation],
    parents: Sequence[Job | None],
    children: Sequence[Job],
    children_truncated: bool,
) -> dict[str, Any]:
    """Everything about one job: the wire Job plus its lease (never the token), why it is not running,
    and its DAG neighbours."""
    detail = wire.job_to_wire(job)
    detail["deliveries"] = job.deliveries
    detail["lease_expires_at"] = rfc3339(job.lease_expires_at)
    detail["lease_ms"] = job.lease_ms
    parent_rows: list[dict[str, Any]] = []
    for parent_id, parent in zip(job.depends_on, parents, strict=True):
        if parent is None:
            parent_rows.append({"id": parent_id, "missing": True})
        else:
            parent_rows.append(job_row(parent))
    return {
        "job": detail,
        "reasons": [{"code": r.code, "detail": r.detail} for r in reasons],
        "parents": parent_rows,
        "children": [job_row(child) for child in children],
        "children_truncated": children_truncated,
    }


def payload_text(data: Any) -> str:
    """A message payload as text: qrusty payloads are strings; other data is shown as JSON."""
    return data if isinstance(data, str) else _encoder.encode(data).decode()


def message_view(job: Job) -> dict[str, Any]:
    """A consumed test message, with the lease credential the dashboard needs to ack or nack it."""
    return {
        "id": job.id,
        "queue": job.queue,
        "payload": payload_text(job.data),
        "priority": job.priority,
        "created_at": rfc3339(job.created_at),
        "retry_count": job.attempt,
        "max_retries": max(job.max_attempts - 1, 0),
        "locked_by": job.worker_id,
        "lock_expires_at": rfc3339(job.lease_expires_at),
        "lease_token": job.lease_token,
    }


def schedule_counts(schedules: Sequence[Schedule]) -> dict[str, int]:
    paused = sum(1 for s in schedules if s.paused)
    return {"total": len(schedules), "paused": paused, "active": len(schedules) - paused}
