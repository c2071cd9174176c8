"""Entry point of the ``otel`` plugin. OpenTelemetry is imported on first use, never at load time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl

if TYPE_CHECKING:
    from rustqueue_core.models import JobEvent, NewJob, Principal, WorkerInfo
    from rustqueue_otel.tracing import OtelPlugin

_default: OtelPlugin | None = None


def default_plugin() -> OtelPlugin:
    """The process's plugin state, built on first use from the global or ``OTEL_*``-configured providers
    (OpenTelemetry providers are process-wide, so one state serves every engine of the process)."""
    global _default
    if _default is None:
        from rustqueue_otel.tracing import OtelPlugin

        _default = OtelPlugin()
    return _default


@hookimpl
def rustqueue_before_push(jobs: Sequence[NewJob], principal: Principal | None) -> None:
    default_plugin().rustqueue_before_push(jobs, principal)


@hookimpl
def rustqueue_worker_middleware(queue: str, worker: WorkerInfo) -> Any:
    return default_plugin().rustqueue_worker_middleware(queue, worker)


@hookimpl
def rustqueue_jobs_changed(events: Sequence[JobEvent]) -> None:
    default_plugin().rustqueue_jobs_changed(events)


@hookimpl
def rustqueue_lifespan(engine: Any) -> Any:
    return default_plugin().rustqueue_lifespan(engine)
