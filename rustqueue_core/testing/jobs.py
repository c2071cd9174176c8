"""Small builders for storage-level tests: jobs with uuid ids and simple, explicit sort keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from rustqueue_core.models import Job, Schedule

#: The instant storage tests treat as "now".
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def sort_key_of(rank: int) -> bytes:
    """A claim-order key: lower ranks are claimed first."""
    return rank.to_bytes(8, "big", signed=False)


def make_job(queue: str = "q", rank: int = 0, *, name: str = "job", **fields: Any) -> Job:
    """A waiting job in ``queue`` with claim rank ``rank``; ``fields`` override any Job field."""
    fields.setdefault("id", str(uuid.uuid4()))
    fields.setdefault("created_at", T0)
    fields.setdefault("updated_at", fields["created_at"])
    fields.setdefault("sort_key", sort_key_of(rank))
    return Job(name=name, queue=queue, **fields)


def make_jobs(count: int, queue: str = "q", start: int = 0, **fields: Any) -> list[Job]:
    return [make_job(queue, start + i, **fields) for i in range(count)]


def make_schedule(name: str = "nightly", **fields: Any) -> Schedule:
    fields.setdefault("queue", "q")
    fields.setdefault("job_name", "job")
    fields.setdefault("every_ms", 60_000)
    fields.setdefault("created_at", T0)
    fields.setdefault("updated_at", T0)
    return Schedule(name=name, **fields)


def replace(job: Job, **changes: Any) -> Job:
    return msgspec.structs.replace(job, **changes)
