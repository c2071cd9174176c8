"""JSON shapes of the HTTP API: request bodies (decoded with msgspec in one pass) and response encoding.

Job objects follow the original's key order; every optional key is ``null`` except ``metadata``, which
is left out when absent. Timestamps are RFC 3339 UTC with a ``Z`` suffix (msgspec's encoding of aware
UTC datetimes), except ``next_attempt_at`` of a fail response, which uses ``+00:00`` as the original does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from rustqueue_core.errors import ValidationError
from rustqueue_core.models import (
    JOB_OPTION_KEYS,
    FlowInfo,
    JobOptions,
    NewJob,
    QueueCounts,
    QueueInfo,
)
from rustqueue_core.wire import (  # noqa: F401 - the HTTP routes import these from here
    batch_outcomes,
    job_to_wire,
    jobs_to_wire,
    offset_timestamp,
    options_to_wire,
    schedule_to_wire,
)

COUNT_KEYS = ("waiting", "active", "delayed", "completed", "failed", "dlq", "blocked", "cancelled")
FLOW_SUMMARY_KEYS = ("total", "waiting", "active", "blocked", "completed", "failed", "dlq")

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

encode = msgspec.json.encode


# --------------------------------------------------------------------------- request bodies


class PushItem(JobOptions, kw_only=True):
    """One push: ``name`` and ``data`` (required; ``data`` may be null) plus the options, flattened.

    A nested ``options`` object is not a field, so it is ignored exactly as the original ignores it."""

    name: str
    data: Any

    def to_new_job(self, queue: str) -> NewJob:
        options = JobOptions(**{key: getattr(self, key) for key in JOB_OPTION_KEYS})
        return NewJob(queue=queue, name=self.name, data=self.data, options=options)


class AckBody(msgspec.Struct, kw_only=True):
    result: Any = None
    lease_token: str | None = None


class FailBody(msgspec.Struct, kw_only=True):
    error: str
    lease_token: str | None = None
    retry_delay_ms: int | None = None
    dead: bool = False


class ProgressBody(msgspec.Struct, kw_only=True):
    progress: int
    message: str | None = None
    lease_token: str | None = None


class LeaseBody(msgspec.Struct, kw_only=True):
    """Optional body of heartbeat and release: only the fencing credential is read."""

    lease_token: str | None = None


class AckBatchItem(msgspec.Struct, kw_only=True):
    id: str
    result: Any = None
    lease_token: str | None = None


class AckBatchBody(msgspec.Struct, kw_only=True):
    items: list[AckBatchItem] | None = None
    ids: list[str] | None = None


class IdsBody(msgspec.Struct, kw_only=True):
    ids: list[str] | None = None


class ScheduleBody(msgspec.Struct, kw_only=True):
    """Create-schedule body. Unset keys are not passed on, so engine defaults apply."""

    name: str
    queue: str
    job_name: str
    job_data: Any = None
    job_options: JobOptions | None = None
    cron_expr: str | msgspec.UnsetType | None = msgspec.UNSET
    every_ms: int | msgspec.UnsetType | None = msgspec.UNSET
    timezone: str | msgspec.UnsetType | None = msgspec.UNSET
    max_executions: int | msgspec.UnsetType | None = msgspec.UNSET
    run_immediately: bool | msgspec.UnsetType = msgspec.UNSET

    def to_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "name": self.name,
            "queue": self.queue,
            "job_name": self.job_name,
            "job_data": self.job_data,
            "job_options": None if self.job_options is None else options_to_dict(self.job_options),
        }
        for key in ("cron_expr", "every_ms", "timezone", "max_executions", "run_immediately"):
            value = getattr(self, key)
            if value is not msgspec.UNSET:
                fields[key] = value
        return fields


PUSH_DECODER: msgspec.json.Decoder[PushItem | list[PushItem]] = msgspec.json.Decoder(PushItem | list[PushItem])
ACK_DECODER = msgspec.json.Decoder(AckBody)
FAIL_DECODER = msgspec.json.Decoder(FailBody)
PROGRESS_DECODER = msgspec.json.Decoder(ProgressBody)
LEASE_DECODER = msgspec.json.Decoder(LeaseBody)
ACK_BATCH_DECODER = msgspec.json.Decoder(AckBatchBody)
IDS_DECODER = msgspec.json.Decoder(IdsBody)
SCHEDULE_DECODER = msgspec.json.Decoder(ScheduleBody)


class WireError(Exception):
    """An error known only by its wire code and status (e.g. one item of a batch outcome)."""

    def __init__(self, code: str, status: int, message: str, *, with_details: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.with_details = with_details


class MalformedBody(ValidationError):
    """The body is not JSON at all (HTTP 400)."""


class UnprocessableBody(ValidationError):
    """The body is JSON of the wrong shape (HTTP 422)."""

    status = 422


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """One msgspec decode; JSON errors → 400, shape errors → 422, both as VALIDATION_ERROR."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise UnprocessableBody(f"Invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"Invalid JSON: {exc}") from None


def decode_optional_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """Like ``decode_body`` but an empty (or whitespace) body means "no body" (the SDKs' empty ack)."""
    if not body or body.isspace():
        return None
    return decode_body(decoder, body)


def lenient_lease_token(body: bytes) -> str | None:
    """Heartbeat and cancel ignore whatever is sent; only a well-formed ``lease_token`` is honoured."""
    if not body or body.isspace():
        return None
    try:
        return LEASE_DECODER.decode(body).lease_token
    except msgspec.DecodeError:
        return None


def check_job_id(job_id: str) -> str:
    if _UUID_RE.match(job_id) is None:
        raise MalformedBody("Invalid job ID format")
    return job_id.lower()


# --------------------------------------------------------------------------- response shapes


def options_to_dict(options: JobOptions) -> dict[str, Any]:
    return options_to_wire(options) or {}


def counts_to_wire(counts: QueueCounts) -> dict[str, int]:
    return {key: getattr(counts, key) for key in COUNT_KEYS}


def queue_info_to_wire(info: QueueInfo) -> dict[str, Any]:
    return {"name": info.name, "counts": counts_to_wire(info.counts), "paused": info.paused}


def flow_to_wire(flow: FlowInfo) -> dict[str, Any]:
    summary: dict[str, int] = {key: int(flow.summary.get(key, 0)) for key in FLOW_SUMMARY_KEYS}
    for key, value in flow.summary.items():
        summary.setdefault(key, int(value))
    return {"ok": True, "flow_id": flow.flow_id, "jobs": jobs_to_wire(flow.jobs), "summary": summary}


def error_body(code: str, message: str, *, details: Any = None, with_details: bool = True) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if with_details:
        error["details"] = details
    return encode({"ok": False, "error": error})


def mapping_or_empty(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return value if value is not None else {}
