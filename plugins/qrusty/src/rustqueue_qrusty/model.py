"""The qrusty queue model on top of the engine (SEMANTICS §4.2): request checks, publish options and
the message / queue / stats objects qrusty's clients read. No server library is imported here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from rustqueue_core.errors import RustQueueError
from rustqueue_core.models import Job, QueueConfig, QueueStats

#: Job name of every message published through the qrusty API (the engine needs one).
MESSAGE_JOB_NAME = "qrusty.message"
MAX_U64 = 2**64 - 1
ORDERING_TO_ENGINE = {"MaxFirst": "max_first", "MinFirst": "min_first", "Fifo": "fifo"}
ORDERING_FROM_ENGINE = {"max_first": "MaxFirst", "min_first": "MinFirst", "fifo": "Fifo", "lifo": "Lifo"}
KIND_TO_ENGINE = {"Numeric": "numeric", "Text": "text"}
KIND_FROM_ENGINE = {"numeric": "Numeric", "text": "Text"}
_encoder = msgspec.json.Encoder()


class QrustyError(Exception):
    """A request error with qrusty's status and a stable code."""

    def __init__(self, status: int, code: str, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


def bad_request(message: str) -> QrustyError:
    return QrustyError(400, "BAD_REQUEST", message)


def not_found(message: str) -> QrustyError:
    return QrustyError(404, "NOT_FOUND", message)


_body_decoder = msgspec.json.Decoder()


def decode_body(raw: bytes | bytearray) -> Any:
    """A request body as JSON; ``None`` when it is empty or only whitespace."""
    if not raw.strip():
        return None
    try:
        return _body_decoder.decode(raw)
    except msgspec.DecodeError:
        raise bad_request("request body is not valid JSON") from None


def from_engine_error(exc: RustQueueError) -> QrustyError:
    """Engine errors in qrusty's terms; never a 5xx for a caller's mistake."""
    retry_ms = getattr(exc, "retry_after_ms", 0) or 0
    retry_s = max(1, -(-int(retry_ms) // 1000)) if retry_ms else None
    if exc.code == "OVERLOADED":
        return QrustyError(
            503,
            "MEMORY_PRESSURE",
            "publish refused: the server is under critical memory pressure; retry later",
            retry_after_s=retry_s or 2,
        )
    if exc.code == "NOT_READY":
        return QrustyError(503, "STARTING", "server is starting", retry_after_s=2)
    status = exc.status if exc.status < 500 else 503
    if exc.code == "CLOSED":
        return QrustyError(503, "SHUTTING_DOWN", exc.message, retry_after_s=retry_s or 2)
    return QrustyError(status, exc.code, exc.message, retry_after_s=retry_s)


# --------------------------------------------------------------------------- request checks


def require_str(body: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad_request(f"missing field '{key}'")
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"'{key}' must be a non-empty string")
    return value


def require_object(body: Any, what: str = "request body") -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise bad_request(f"{what} must be a JSON object")
    return body


def check_priority(priority: Any, config: QueueConfig) -> int | str:
    """The priority must match the queue's kind: a u64 for Numeric, a string for Text."""
    if config.priority_kind == "text":
        if not isinstance(priority, str):
            raise bad_request(
                f"queue '{config.name}' has Text priorities: priority must be a string (got {priority!r})"
            )
        if "\x00" in priority or len(priority.encode()) > 1024:
            raise bad_request("a Text priority must be at most 1024 bytes and contain no NUL character")
        return priority
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise bad_request(
            f"queue '{config.name}' has Numeric priorities: priority must be an integer from 0 to "
            f"{MAX_U64} (got {priority!r})"
        )
    if not 0 <= priority <= MAX_U64:
        raise bad_request(f"priority must be between 0 and {MAX_U64} (got {priority})")
    return priority


def check_max_retries(value: Any) -> int:
    if value is None:
        return 3
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32 - 1:
        raise bad_request(f"max_retries must be a non-negative integer (got {value!r})")
    return value


def check_payload(value: Any) -> str:
    if not isinstance(value, str):
        raise bad_request("payload must be a string (encode structured payloads as JSON text)")
    return value


def publish_options(priority: int | str, max_retries: int) -> dict[str, Any]:
    """``push`` keywords of one qrusty publish: retries without backoff, so a nacked or expired message
    is back in line at once, in its original place."""
    return {
        "priority": priority,
        "max_attempts": max_retries + 1,
        "backoff": "fixed",
        "backoff_delay_ms": 0,
    }


def queue_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``create_queue`` keywords from qrusty's ``config`` object (every field optional)."""
    settings: dict[str, Any] = {}
    unknown = set(config) - {"ordering", "priority_kind", "allow_duplicates", "name"}
    if unknown:
        raise bad_request(f"unknown queue config field(s): {', '.join(sorted(unknown))}")
    ordering = config.get("ordering", "MaxFirst")
    if ordering not in ORDERING_TO_ENGINE:
        raise bad_request(f"ordering must be MaxFirst, MinFirst or Fifo (got {ordering!r})")
    settings["ordering"] = ORDERING_TO_ENGINE[ordering]
    kind = config.get("priority_kind", "Numeric")
    if kind not in KIND_TO_ENGINE:
        raise bad_request(f"priority_kind must be Numeric or Text (got {kind!r})")
    settings["priority_kind"] = KIND_TO_ENGINE[kind]
    duplicates = config.get("allow_duplicates", True)
    if not isinstance(duplicates, bool):
        raise bad_request("allow_duplicates must be true or false")
    settings["allow_duplicates"] = duplicates
    return settings


# --------------------------------------------------------------------------- response objects


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def payload_text(data: Any) -> str:
    """The opaque payload string; data pushed through other APIs is shown as its JSON text."""
    return data if isinstance(data, str) else _encoder.encode(data).decode()


def message_object(job: Job) -> dict[str, Any]:
    """The consume answer. Timestamps stay ``datetime``: msgspec writes them exactly as :func:`rfc3339`
    would (``Z`` for UTC), only faster; the object is meant for msgspec's encoder."""
    return {
        "id": job.id,
        "queue": job.queue,
        "payload": payload_text(job.data),
        "priority": job.priority,
        "created_at": job.created_at,
        "retry_count": job.attempt,
        "max_retries": max(job.max_attempts - 1, 0),
        "locked_by": job.worker_id,
        "lock_expires_at": job.lease_expires_at,
    }


def deliver_frame(job: Job) -> dict[str, Any]:
    """A ``deliver`` frame, for msgspec's encoder (see :func:`message_object`)."""
    return {
        "type": "deliver",
        "queue": job.queue,
        "id": job.id,
        "payload": payload_text(job.data),
        "priority": job.priority,
        "created_at": job.created_at,
    }


def config_object(config: QueueConfig) -> dict[str, Any]:
    return {
        "ordering": ORDERING_FROM_ENGINE.get(config.ordering, config.ordering),
        "priority_kind": KIND_FROM_ENGINE.get(config.priority_kind, config.priority_kind),
        "allow_duplicates": config.allow_duplicates,
    }


def stats_object(stats: QueueStats, config: QueueConfig) -> dict[str, Any]:
    counts = stats.counts
    return {
        "name": stats.name,
        "config": config_object(config),
        "pending": stats.pending,
        "locked": stats.locked,
        "dead_letter": counts.dlq,
        "completed": counts.completed,
        "total": counts.total,
        "published": stats.published,
        "acked": stats.acked,
        "nacked": stats.nacked,
        "dropped": stats.dead,
        "publish_rate_per_sec": round(stats.publish_rate_per_sec, 3),
        "ack_rate_per_sec": round(stats.ack_rate_per_sec, 3),
        "paused": stats.paused,
    }


def summary_object(queues: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "total_queues": len(queues),
        "total_pending": sum(q["pending"] for q in queues),
        "total_locked": sum(q["locked"] for q in queues),
        "total_dead_letter": sum(q["dead_letter"] for q in queues),
        "total_messages": sum(q["total"] for q in queues),
        "total_published": sum(q["published"] for q in queues),
        "total_acked": sum(q["acked"] for q in queues),
        "publish_rate_per_sec": round(sum(q["publish_rate_per_sec"] for q in queues), 3),
        "ack_rate_per_sec": round(sum(q["ack_rate_per_sec"] for q in queues), 3),
    }
