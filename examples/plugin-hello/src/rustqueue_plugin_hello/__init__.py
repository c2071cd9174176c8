"""A third-party rustqueue plugin: counts job events and reports them through health."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rustqueue_core import HealthCheck, JobEvent, hookimpl

seen: Counter[str] = Counter()


@hookimpl
def rustqueue_jobs_changed(events: Sequence[JobEvent]) -> None:
    seen.update(event.kind for event in events)


@hookimpl
def rustqueue_health() -> HealthCheck:
    total = sum(seen.values())
    return HealthCheck(component="hello", state="ok", detail=f"{total} job events seen")
