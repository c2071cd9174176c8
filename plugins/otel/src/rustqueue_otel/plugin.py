"""Entry point of the ``otel`` plugin.

OpenTelemetry is not imported when the plugin loads: the per-host object builds its state on first use,
and its lifespan warms the import up in a worker thread, so a server starts as fast with the plugin as
without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl

if TYPE_CHECKING:
    from rustqueue_core.models import JobEvent, NewJob, Principal, WorkerInfo
    from rustqueue_otel.tracing import OtelPlugin


class LazyOtel:
    """Hook implementations that build :class:`~rustqueue_otel.tracing.OtelPlugin` on first use."""

    def __init__(self) -> None:
        self._state: OtelPlugin | None = None
        self._lock = threading.Lock()

    def state(self) -> OtelPlugin:
        if self._state is None:
            with self._lock:
                if self._state is None:
                    from rustqueue_otel.tracing import OtelPlugin

                    self._state = OtelPlugin()
        return self._state

    @hookimpl
    def rustqueue_before_push(self, jobs: Sequence[NewJob], principal: Principal | None) -> None:
        self.state().rustqueue_before_push(jobs, principal)

    @hookimpl
    def rustqueue_worker_middleware(self, queue: str, worker: WorkerInfo) -> Any:
        return self.state().rustqueue_worker_middleware(queue, worker)

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        self.state().rustqueue_jobs_changed(events)

    @hookimpl
    def rustqueue_lifespan(self, engine: Any) -> Any:
        return self._lifespan()

    @contextlib.asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        warmup = asyncio.get_running_loop().run_in_executor(None, self.state)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await warmup
            if self._state is not None:
                self._state.shutdown()


def rustqueue_plugin_factory(host: Any) -> LazyOtel:
    return LazyOtel()
