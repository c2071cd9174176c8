"""Shared state of an engine instance: gates, queue configs, events, wake-ups, counters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rustqueue_core.clock import Clock
from rustqueue_core.errors import (
    Closed,
    InternalError,
    InvalidState,
    JobNotFound,
    LeaseLost,
    NotReady,
    RustQueueError,
)
from rustqueue_core.memory_pressure import MemoryMonitor
from rustqueue_core.models import Capabilities, Job, JobEvent, QueueConfig, StorageSpec
from rustqueue_core.ratelimit import RateLimiter
from rustqueue_core.settings import EngineSettings
from rustqueue_core.stats import Counters
from rustqueue_core.storage import LEASE_LOST, NOT_FOUND

if TYPE_CHECKING:
    from rustqueue_core.plugins import PluginHost
    from rustqueue_core.storage import Storage

log = logging.getLogger("rustqueue.engine")

Listener = Callable[[Sequence[JobEvent]], None]
#: States a delivery goes back to when recovery takes it away; a stale credential there is LEASE_LOST.
_RECOVERED_STATES = frozenset({"waiting", "delayed"})
_MAX_TRACKED_FOLLOWUPS = 100_000
LEASE_CLEARED: dict[str, Any] = {
    "lease_token": None,
    "lease_expires_at": None,
    "lease_ms": None,
    "deadline_at": None,
    "last_heartbeat": None,
}


class EngineBase:
    """State and helpers every part of the engine uses."""

    #: Schedule fires by this instance since it started (the ``schedules_fired`` metric).
    schedules_fired: int = 0
    #: Reads are served while starting (SEMANTICS §4.4), except while ``start()`` opens storage.
    _opening_storage: bool = False

    def __init__(
        self,
        storage: Storage,
        *,
        settings: EngineSettings | None = None,
        host: PluginHost | None = None,
        clock: Clock | None = None,
        storage_spec: StorageSpec | None = None,
    ) -> None:
        from rustqueue_core import __version__

        self.storage = storage
        self.settings = (settings or EngineSettings()).validate()
        self.host = host
        self.clock = clock or Clock()
        self.storage_spec = storage_spec
        caps = getattr(storage, "capabilities", None)
        self.capabilities: Capabilities = caps if isinstance(caps, Capabilities) else Capabilities()
        self.state = "starting"
        self.version = __version__
        self._configs: dict[str, QueueConfig] = {}
        self._limiter = RateLimiter()
        self._counters = Counters(self.clock.monotonic())
        self._memory = MemoryMonitor(
            self.settings.memory_limit_mb,
            self.settings.memory_pressure_threshold,
            self.settings.memory_critical_threshold,
            self.settings.memory_exit_threshold,
        )
        self._listeners: list[Listener] = []
        self._wake_events: dict[str, asyncio.Event] = {}
        self._followup_ids: set[str] = set()
        #: per queue: (config, engine defaults, queue defaults, resolved push plan); see PushMixin
        self._plan_cache: dict[str, tuple[Any, ...]] = {}
        self._last_claim: dict[str, float] = {}
        self._started_mono = self.clock.monotonic()
        self._started_wall: datetime = self.clock.now()

    @property
    def memory_monitor(self) -> MemoryMonitor:
        """The memory-pressure monitor housekeeping samples (SEMANTICS §4.5)."""
        return self._memory

    def set_memory_monitor(self, monitor: MemoryMonitor) -> None:
        """Replace the memory-pressure policy at run time (a transport with its own limits, e.g. qrusty's
        warning / critical / exit thresholds). The new monitor starts at its own level."""
        self._memory = monitor

    # ------------------------------------------------------------------ gates
    def _gate_mutation(self) -> None:
        state = self.state
        if state == "ready" or state == "draining":
            return
        if state == "starting":
            raise NotReady()
        raise Closed()

    def _gate_read(self) -> None:
        state = self.state
        if state == "closed":
            raise Closed()
        if state == "starting" and self._opening_storage:
            raise NotReady("Engine is opening its storage")

    # ------------------------------------------------------------------ queue configs
    def _config(self, queue: str) -> QueueConfig:
        config = self._configs.get(queue)
        return config if config is not None else QueueConfig(name=queue)

    def _apply_config(self, config: QueueConfig) -> None:
        self._configs[config.name] = config
        self._limiter.configure(
            config.name, config.rate_limit_per_second, config.rate_limit_burst, self.clock.monotonic()
        )

    async def _load_configs(self) -> None:
        stored = await self.storage.get_queue_configs()
        for name in list(self._configs):
            if name not in stored:
                del self._configs[name]
                self._limiter.drop(name)
        for config in stored.values():
            self._apply_config(config)

    # ------------------------------------------------------------------ events
    @property
    def _has_consumers(self) -> bool:
        if self._listeners:
            return True
        host = self.host
        return host is not None and bool(getattr(host, "has_jobs_changed", False))

    def _emit(self, events: list[JobEvent]) -> None:
        """Deliver one committed batch to the hook and the in-process listeners, each isolated."""
        if not events:
            return
        host = self.host
        if host is not None and getattr(host, "has_jobs_changed", False):
            try:
                host.jobs_changed(events)
            except Exception:
                log.exception("jobs_changed consumer failed")
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                log.exception("event listener %r failed", listener)

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """In-process event consumer called with each committed batch (like ``rustqueue_jobs_changed``).
        Returns a function that removes it."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def _event(
        self,
        kind: str,
        job_id: str,
        queue: str,
        now: datetime,
        *,
        state: str | None = None,
        attempt: int | None = None,
        reason: str | None = None,
        name: str | None = None,
        job: Job | None = None,
    ) -> JobEvent:
        return JobEvent(
            kind=kind,
            job_id=job_id,
            queue=queue,
            timestamp=now,
            state=state,
            attempt=attempt,
            reason=reason,
            name=name,
            job=job,
        )

    def _track_followups(self, job_id: str) -> None:
        """Remember a job whose ack must prepare follow-ups in the same storage call. Bounded: a
        forgotten id still gets its follow-ups, inserted right after the ack instead."""
        if len(self._followup_ids) >= _MAX_TRACKED_FOLLOWUPS:
            self._followup_ids.clear()
        self._followup_ids.add(job_id)

    # ------------------------------------------------------------------ wake-ups
    def _wake(self, queues: Iterable[str]) -> None:
        events = self._wake_events
        for queue in queues:
            event = events.pop(queue, None)
            if event is not None:
                event.set()

    def _wake_all(self) -> None:
        self._wake(list(self._wake_events))

    def _waiter(self, queue: str) -> asyncio.Event:
        event = self._wake_events.get(queue)
        if event is None:
            event = self._wake_events[queue] = asyncio.Event()
        return event

    # ------------------------------------------------------------------ outcome mapping
    @staticmethod
    def _outcome_error(job_id: str, outcome: str, expected: tuple[str, ...], credential_given: bool) -> RustQueueError:
        if outcome == NOT_FOUND:
            return JobNotFound(job_id)
        if outcome == LEASE_LOST:
            return LeaseLost(job_id)
        if outcome.startswith("state:"):
            current = outcome[6:]
            if credential_given and "active" in expected and current in _RECOVERED_STATES:
                # The delivery was taken back by recovery: the caller's credential is dead.
                return LeaseLost(job_id)
            return InvalidState(current, expected, job_id)
        return InternalError(f"unexpected storage outcome {outcome!r} for job {job_id}")
