"""The engine: batch-shaped push / claim / ack / fail, flows, schedules, queue admin, housekeeping.

``RustQueue`` composes the engine's parts, each in its own module (one layer on top of the next):
``engine_base`` (state, gates, events) → ``pushing`` → ``flows`` → ``delivery`` (claim, ack, fail,
nack) → ``leases`` (release, heartbeat, renew, progress, cancel) → ``admin`` → ``schedules`` →
``housekeeping`` → this module (lifecycle, health, builders, workers).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import msgspec

from rustqueue_core.housekeeping import HousekeepingMixin
from rustqueue_core.models import Health, HealthCheck, QueueConfig, StorageSpec
from rustqueue_core.settings import EngineSettings

if TYPE_CHECKING:
    from rustqueue_core.builder import RustQueueBuilder
    from rustqueue_core.clock import Clock
    from rustqueue_core.models import WorkerStats
    from rustqueue_core.plugins import PluginHost
    from rustqueue_core.storage import Storage

log = logging.getLogger("rustqueue.engine")

_UNSET: Any = object()
_CONFIG_DEFAULTS = QueueConfig(name="")


class RustQueue(HousekeepingMixin):
    """One engine instance over one storage. Build with ``RustQueue.memory()``, ``RustQueue.sqlite(path)``
    or ``RustQueue.open(url)`` (builders), then ``await builder.build()``.

    ``state`` is ``starting`` → ``ready`` → ``draining`` → ``closed``.
    """

    worker_registry: Any = None
    _lifespans: AsyncExitStack | None = None

    def __init__(
        self,
        storage: Storage,
        *,
        settings: EngineSettings | None = None,
        host: PluginHost | None = None,
        clock: Clock | None = None,
        storage_spec: StorageSpec | None = None,
    ) -> None:
        super().__init__(storage, settings=settings, host=host, clock=clock, storage_spec=storage_spec)

    # ------------------------------------------------------------------ builders
    @classmethod
    def memory(cls) -> RustQueueBuilder:
        from rustqueue_core.builder import RustQueueBuilder

        return RustQueueBuilder("memory://")

    @classmethod
    def sqlite(cls, path: str | os.PathLike[str]) -> RustQueueBuilder:
        from rustqueue_core.builder import RustQueueBuilder, sqlite_url

        return RustQueueBuilder(sqlite_url(os.fspath(path)))

    @classmethod
    def open(cls, url: str) -> RustQueueBuilder:
        from rustqueue_core.builder import RustQueueBuilder

        return RustQueueBuilder(url)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, lifespans: bool = False) -> RustQueue:
        """Open storage, apply queue config, one housekeeping pass (recovery), optionally enter the
        plugins' lifespans, start housekeeping; → ready. Until then mutations get ``NOT_READY``."""
        if self.state != "starting":
            return self
        self._opening_storage = True
        try:
            await self.storage.open()
        finally:
            self._opening_storage = False
        await self._load_configs()
        await self._apply_configured_queues()
        await self._housekeeping_pass(full=True)
        if lifespans:
            await self.enter_lifespans()
        self.state = "ready"
        self._start_housekeeping()
        return self

    async def enter_lifespans(self) -> None:
        """Enter every plugin's ``rustqueue_lifespan`` context, in call order; ``close()`` exits them in
        reverse after draining workers and before storage closes. A lifespan that fails to start stops
        here, after unwinding the ones already entered, with an error naming its plugin."""
        host = self.host
        if host is None or self._lifespans is not None or not hasattr(host, "named_lifespans"):
            return
        from rustqueue_core.plugins import PluginLoadError

        stack = AsyncExitStack()
        try:
            for name, lifespan in host.named_lifespans(self):
                started = time.perf_counter()
                try:
                    await stack.enter_async_context(lifespan)
                except Exception as exc:
                    raise PluginLoadError(name, exc, during="start", label=host.distribution_label(name)) from exc
                log.debug("lifespan of %s entered in %.0f ms", name, (time.perf_counter() - started) * 1000)
        except BaseException:
            await stack.aclose()
            raise
        self._lifespans = stack

    async def _apply_configured_queues(self) -> None:
        """Config-file ``[queues.<name>]`` values override stored ones for the keys they set."""
        for configured in self.settings.queues:
            stored = self._configs.get(configured.name) or QueueConfig(
                name=configured.name, created_at=self.clock.now()
            )
            changes = {
                field: getattr(configured, field)
                for field in QueueConfig.__struct_fields__
                if field not in ("name", "created_at")
                and getattr(configured, field) != getattr(_CONFIG_DEFAULTS, field)
            }
            if not changes:
                continue
            merged = msgspec.structs.replace(stored, **changes)
            if merged != stored:
                await self.storage.put_queue_config(merged)
            self._apply_config(merged)

    async def close(self, grace: float = 30.0) -> None:
        """Drain workers, stop housekeeping, flush and close storage; → closed. Idempotent."""
        if self.state == "closed":
            return
        self.state = "draining"
        self._wake_all()
        if getattr(self, "_rustqueue_workers", None):
            from rustqueue_core.worker import drain_workers

            try:
                await drain_workers(self, grace)
            except Exception:
                log.exception("draining workers failed")
        if self._lifespans is not None:
            stack, self._lifespans = self._lifespans, None
            try:
                await stack.aclose()
            except Exception:
                log.exception("a plugin lifespan failed to exit cleanly")
        await self._stop_housekeeping()
        try:
            await self.storage.close()
        finally:
            self.state = "closed"
            self._wake_all()

    async def __aenter__(self) -> RustQueue:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ health
    async def health(self) -> Health:
        checks: list[HealthCheck] = []
        if self.host is not None and hasattr(self.host, "health"):
            checks.extend(self.host.health(self))
        if self._memory.enabled and self._memory.level != "normal":
            checks.append(
                HealthCheck(
                    component="memory",
                    state="degraded",
                    detail=f"memory {self._memory.level}: {self._memory.last_bytes} bytes of {self._memory.limit}",
                )
            )
        if self.state == "starting":
            status = "starting"
        elif self.state == "ready":
            status = "degraded" if any(c.state in ("degraded", "down") for c in checks) else "ok"
        else:
            status = self.state
        return Health(
            status=status,
            state=self.state,
            version=self.version,
            uptime_seconds=int(self.clock.monotonic() - self._started_mono),
            checks=checks,
            memory_level=self._memory.level,
        )

    # ------------------------------------------------------------------ workers
    async def run_worker(self, queue: str, handler: Any, **kw: Any) -> WorkerStats:
        from rustqueue_core.worker import run_worker

        return await run_worker(self, queue, handler, **kw)

    async def dispatch_next(self, queue: str) -> str | None:
        from rustqueue_core.worker import dispatch_next

        return await dispatch_next(self, queue)

    def __repr__(self) -> str:
        return f"<RustQueue state={self.state} storage={type(self.storage).__name__}>"


Engine = RustQueue

__all__ = ["Engine", "RustQueue"]
