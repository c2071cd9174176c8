"""The housekeeping pass (SEMANTICS §3.1): promotions, ttl, schedules, timeouts, stalls, memory,
reconciliation and retention, each step isolated and bounded, each change a compare-and-set."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from rustqueue_core.delivery import FailSpec
from rustqueue_core.memory_pressure import NORMAL
from rustqueue_core.models import JobEvent
from rustqueue_core.schedules import ScheduleMixin
from rustqueue_core.storage import OK, Change, JobFilter

log = logging.getLogger("rustqueue.housekeeping")

_EXPIRABLE = ["waiting", "delayed", "blocked"]
_EXPIRABLE_SET = frozenset(_EXPIRABLE)
_MAX_BATCHES = 10
TIMED_OUT = "job timed out"
STALLED = "job stalled (no heartbeat)"
EXPIRED = "job expired (ttl_ms exceeded)"


class HousekeepingMixin(ScheduleMixin):
    _last_stall_check: datetime | None = None
    _last_reconcile: datetime | None = None
    _last_retention: datetime | None = None
    _housekeeping_errors: int = 0
    _last_tick_seconds: float = 0.0

    @property
    def last_tick_seconds(self) -> float:
        """Duration of the last housekeeping pass."""
        return self._last_tick_seconds

    _housekeeping_task: asyncio.Task[None] | None = None
    _housekeeping_stop: asyncio.Event | None = None

    async def tick(self) -> None:
        """Run one housekeeping pass now (SEMANTICS §3.1)."""
        self._gate_read()
        await self._housekeeping_pass()

    async def _housekeeping_pass(self, *, full: bool = False) -> None:
        started = time.perf_counter()
        now = self.clock.now()
        settings = self.settings
        await self._step("promote", self._promote_due, now)
        await self._step("ttl", self._expire_ttl, now)
        await self._step("schedules", self._fire_schedules_step, now)
        await self._step("timeouts", self._recover_timeouts, now)
        stall_every = timedelta(milliseconds=max(settings.tick_interval_ms, settings.stall_check_interval_ms))
        if full or self._last_stall_check is None or now - self._last_stall_check >= stall_every:
            self._last_stall_check = now
            await self._step("stalls", self._recover_stalls, now)
        await self._step("memory", self._sample_memory, now)
        if full or self._due(self._last_reconcile, settings.reconcile_interval_ms, now):
            self._last_reconcile = now
            await self._step("reconcile", self._reconcile_step, now)
        if full or self._due(self._last_retention, settings.retention.interval_ms, now):
            self._last_retention = now
            await self._step("retention", self._retention, now)
        self._last_tick_seconds = time.perf_counter() - started

    @staticmethod
    def _due(last: datetime | None, interval_ms: int, now: datetime) -> bool:
        return last is None or now - last >= timedelta(milliseconds=interval_ms)

    async def _step(self, name: str, step: Callable[[datetime], Awaitable[None]], now: datetime) -> None:
        try:
            await step(now)
        except Exception:
            self._housekeeping_errors += 1
            log.exception("housekeeping step %s failed", name)

    # ------------------------------------------------------------------ steps
    async def _promote_due(self, now: datetime) -> None:
        batch = self.settings.housekeeping_batch
        for _ in range(_MAX_BATCHES):
            promoted = await self.storage.promote_due(now, batch)
            if not promoted:
                return
            self._wake({queue for _, queue in promoted})
            if self._has_consumers:
                self._emit([self._event("job.promoted", i, q, now, state="waiting") for i, q in promoted])
            if len(promoted) < batch:
                return

    async def _expire_ttl(self, now: datetime) -> None:
        batch = self.settings.housekeeping_batch
        for _ in range(_MAX_BATCHES):
            expired, _ = await self.storage.find_jobs(JobFilter(states=_EXPIRABLE, expires_at_lte=now), batch)
            if not expired:
                return
            changes = [
                Change(id=j.id, expected=frozenset({j.state}), updates={"state": "dlq", "last_error": EXPIRED})
                for j in expired
                if j.state in _EXPIRABLE_SET
            ]
            outcomes = await self.storage.transition(changes, now)
            dead = [o.job for o in outcomes if o.outcome == OK and o.job is not None]
            events: list[JobEvent] = []
            for job in dead:
                self._counters.of(job.queue).dead += 1
                events.append(
                    self._event("job.dlq", job.id, job.queue, now, state="dlq", attempt=job.attempt, reason=EXPIRED)
                )
            if dead:
                events.extend(await self._cascade([j.id for j in dead], "dlq", now))
                events.extend(await self._remove_failed(dead, now))
            self._emit(events)
            if len(expired) < batch:
                return

    async def _fire_schedules_step(self, now: datetime) -> None:
        await self._fire_due_schedules(now)

    async def _recover(self, flt: JobFilter, reason: str, now: datetime) -> None:
        batch = self.settings.housekeeping_batch
        for _ in range(_MAX_BATCHES):
            found, _ = await self.storage.find_jobs(flt, batch)
            if not found:
                return
            await self._apply_failures([FailSpec(job, reason) for job in found], now)
            if len(found) < batch:
                return

    async def _recover_timeouts(self, now: datetime) -> None:
        await self._recover(JobFilter(states=["active"], deadline_before=now), TIMED_OUT, now)

    async def _recover_stalls(self, now: datetime) -> None:
        await self._recover(JobFilter(states=["active"], lease_expires_before=now), STALLED, now)

    async def _sample_memory(self, now: datetime) -> None:
        monitor = self._memory
        if not monitor.enabled:
            return
        _, level = monitor.sample()
        if level != NORMAL:
            shed = getattr(self.storage, "shed", None)
            if shed is not None:
                await shed()

    async def _reconcile_step(self, now: datetime) -> None:
        self._emit(await self._reconcile(now))
        await self._load_configs()

    async def _retention(self, now: datetime) -> None:
        retention = self.settings.retention
        batch = self.settings.housekeeping_batch
        rules: list[JobFilter] = []
        if retention.completed_ttl_ms is not None:
            rules.append(
                JobFilter(
                    states=["completed"],
                    completed_before=now - timedelta(milliseconds=retention.completed_ttl_ms),
                    without_blocked_children=True,
                )
            )
        for state, ttl in (("dlq", retention.dlq_ttl_ms), ("cancelled", retention.cancelled_ttl_ms)):
            if ttl is not None:
                rules.append(
                    JobFilter(
                        states=[state],
                        updated_before=now - timedelta(milliseconds=ttl),
                        without_blocked_children=True,
                    )
                )
        for flt in rules:
            for _ in range(_MAX_BATCHES):
                deleted = await self.storage.delete_jobs(filter=flt, limit=batch)
                if len(deleted) < batch:
                    break

    # ------------------------------------------------------------------ loop
    def _start_housekeeping(self) -> None:
        if not self.settings.housekeeping or self._housekeeping_task is not None:
            return
        self._housekeeping_stop = asyncio.Event()
        self._housekeeping_task = asyncio.get_running_loop().create_task(
            self._housekeeping_loop(self._housekeeping_stop), name="rustqueue-housekeeping"
        )

    async def _housekeeping_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.tick_interval_ms / 1000
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
                return
            except TimeoutError:
                pass
            if self.state not in ("ready", "draining"):
                return
            try:
                await self._housekeeping_pass()
            except Exception:
                self._housekeeping_errors += 1
                log.exception("housekeeping pass failed")

    async def _stop_housekeeping(self) -> None:
        task, self._housekeeping_task = self._housekeeping_task, None
        if task is None:
            return
        if self._housekeeping_stop is not None:
            self._housekeeping_stop.set()
        try:
            await asyncio.wait_for(task, timeout=30)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
