"""Hybrid SQLite storage (``sqlite:///jobs.db?mode=hybrid``): serve from memory, write back to the file.

**A durability trade.** Every call is answered by an in-memory store; changed jobs, schedules and queue
configs are written to the SQLite file every ``snapshot_interval`` seconds (default 1 s) or as soon as
``max_dirty`` (default 5000) jobs changed, in **one transaction per flush**. An acknowledged write can
therefore be lost if the process dies within the snapshot interval (capability ``write_back``,
``loss_window_ms`` = the interval); a flush is applied wholly or not at all, so a batch is never torn.
``close()`` flushes everything. Not ``multi_process``: one process owns the file.

At open every unfinished job (waiting, delayed, blocked, active), every schedule and every queue config
is loaded into memory. Terminal jobs of earlier runs stay on disk and are read through: by id from
the file, and queries that may involve them (any state besides the unfinished ones, counts, queue
listing, retention, rename) flush first and then run on the file, which is then complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rustqueue_core.builtin import sqlite_admin as admin
from rustqueue_core.builtin import sqlite_ops as ops
from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.builtin.sqlite import MAX_BATCH, SQLiteStorage
from rustqueue_core.builtin.sqlite_query import chunks, get_queue_configs, list_schedules, placeholders
from rustqueue_core.models import Capabilities, Job, QueueConfig, QueueCounts, Schedule
from rustqueue_core.storage import (
    OK,
    UNFINISHED_STATES,
    Change,
    ChangeOutcome,
    CompleteItem,
    CompleteOutcome,
    JobFilter,
)

log = logging.getLogger("rustqueue.storage.sqlite")


def _flush_op(
    conn: sqlite3.Connection,
    job_ids: list[str],
    jobs: list[Job],
    configs: list[QueueConfig],
    dropped_configs: list[str],
    schedules: list[Schedule],
    dropped_schedules: list[str],
) -> None:
    """Replace every dirty job row (delete, then insert the current version) and the dirty configs and
    schedules, inside the caller's single transaction."""
    for part in chunks(job_ids):
        marks = placeholders(len(part))
        conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", part)
        conn.execute(f"DELETE FROM job_deps WHERE child_id IN ({marks})", part)
        conn.execute(f"DELETE FROM job_payloads WHERE id IN ({marks})", part)
    if jobs:
        ops.write_jobs(conn, jobs)
    for config in configs:
        admin.put_queue_config(conn, config)
    for name in dropped_configs:
        admin.delete_queue_config(conn, name)
    for schedule in schedules:
        admin.put_schedule(conn, schedule)
    for name in dropped_schedules:
        admin.delete_schedule(conn, name)


def _unfinished_only(f: JobFilter) -> bool:
    return f.states is not None and set(f.states) <= UNFINISHED_STATES


class HybridSQLiteStorage:
    """Memory-served storage with periodic write-back to SQLite. See the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        durability: str = "normal",
        snapshot_interval: float = 1.0,
        max_dirty: int = 5000,
        busy_timeout_s: float = 30.0,
    ) -> None:
        if snapshot_interval <= 0:
            raise ValueError("snapshot_interval must be greater than zero")
        self._disk = SQLiteStorage(path, durability=durability, busy_timeout_s=busy_timeout_s)
        self._mem = MemoryStorage()
        self.snapshot_interval = snapshot_interval
        self.max_dirty = max(1, max_dirty)
        self.capabilities = Capabilities(
            write_back=True,
            loss_window_ms=int(snapshot_interval * 1000),
            group_limits=True,
            claims_due_delayed=MemoryStorage.capabilities.claims_due_delayed,
            ordered_writes=True,
            max_batch=MAX_BATCH,
        )
        self._dirty_jobs: set[str] = set()
        self._dirty_configs: set[str] = set()
        self._dirty_schedules: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._open = False
        self._last_flush = time.monotonic()
        self.flushes = 0

    def __repr__(self) -> str:
        return f"HybridSQLiteStorage({str(self._disk.path)!r}, snapshot_interval={self.snapshot_interval})"

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if self._open:
            return
        await self._disk.open()
        await self._mem.open()
        jobs: list[Job] = self._disk.read(admin.load_all, True)
        if jobs:
            await self._mem.insert_jobs(jobs, max(j.updated_at for j in jobs))
        for config in self._disk.read(get_queue_configs).values():
            await self._mem.put_queue_config(config)
        for schedule in self._disk.read(list_schedules, False):
            await self._mem.put_schedule(schedule)
        self._open = True
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="rustqueue-hybrid-flush")

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            await self.flush()
        finally:
            await self._mem.close()
            await self._disk.close()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._last_flush + self.snapshot_interval - time.monotonic()))
            try:
                await self.flush()
            except Exception:
                log.exception("hybrid flush to %s failed; retrying at the next interval", self._disk.path)

    async def flush(self) -> None:
        """Write every change since the last flush to the file in one transaction."""
        async with self._flush_lock:
            self._last_flush = time.monotonic()
            if not (self._dirty_jobs or self._dirty_configs or self._dirty_schedules):
                return
            # snapshot: memory calls never await, so nothing changes between these lines
            job_ids, self._dirty_jobs = list(self._dirty_jobs), set()
            config_names, self._dirty_configs = self._dirty_configs, set()
            schedule_names, self._dirty_schedules = self._dirty_schedules, set()
            jobs = [j for j in await self._mem.get_jobs(job_ids) if j is not None]
            configs = await self._mem.get_queue_configs()
            schedules = {n: await self._mem.get_schedule(n) for n in schedule_names}
            try:
                await self._disk.run_write(
                    _flush_op,
                    job_ids,
                    jobs,
                    [configs[n] for n in config_names if n in configs],
                    [n for n in config_names if n not in configs],
                    [s for s in schedules.values() if s is not None],
                    [n for n, s in schedules.items() if s is None],
                )
            except BaseException:
                self._dirty_jobs.update(job_ids)
                self._dirty_configs.update(config_names)
                self._dirty_schedules.update(schedule_names)
                raise
            self.flushes += 1

    async def _after_write(self) -> None:
        """Flush from the writing call itself when the interval is over or too much is dirty: a caller
        that never yields to the loop would otherwise starve the background flusher."""
        if len(self._dirty_jobs) >= self.max_dirty or (time.monotonic() - self._last_flush >= self.snapshot_interval):
            await self.flush()

    def _mark(self, ids: Any) -> None:
        self._dirty_jobs.update(ids)

    async def _fault_in(self, ids: Sequence[str]) -> None:
        """Load jobs that only the file holds (terminal jobs of earlier runs) into memory."""
        present = await self._mem.get_jobs(ids)
        missing = [i for i, j in zip(ids, present, strict=True) if j is None and i not in self._dirty_jobs]
        if missing:
            found = [j for j in await self._disk.get_jobs(missing) if j is not None]
            if found:
                await self._mem.insert_jobs(found, found[0].updated_at)

    # ------------------------------------------------------------------ jobs
    async def insert_jobs(self, jobs: Sequence[Job], now: datetime) -> None:
        await self._mem.insert_jobs(jobs, now)
        self._mark(j.id for j in jobs)
        await self._after_write()

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        found = await self._mem.get_jobs(ids)
        missing = [i for i, j in zip(ids, found, strict=True) if j is None and i not in self._dirty_jobs]
        if not missing:
            return found
        on_disk = dict(zip(missing, await self._disk.get_jobs(missing), strict=True))
        return [j if j is not None else on_disk.get(i) for i, j in zip(ids, found, strict=True)]

    async def claim(
        self,
        queue: str,
        n: int,
        now: datetime,
        *,
        consumer_id: str | None,
        lease_ms: int,
        group_limit: int | None = None,
    ) -> list[Job]:
        jobs = await self._mem.claim(
            queue, min(n, MAX_BATCH), now, consumer_id=consumer_id, lease_ms=lease_ms, group_limit=group_limit
        )
        self._mark(j.id for j in jobs)
        await self._after_write()
        return jobs

    async def complete(self, items: Sequence[CompleteItem], now: datetime) -> list[CompleteOutcome]:
        await self._fault_in([it.id for it in items])
        outcomes = await self._mem.complete(items, now)
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.outcome == OK:
                self._mark([item.id, *(s.id for s in item.spawned)])
        await self._after_write()
        return outcomes

    async def transition(self, changes: Sequence[Change], now: datetime) -> list[ChangeOutcome]:
        await self._fault_in([c.id for c in changes])
        outcomes = await self._mem.transition(changes, now)
        self._mark(o.id for o in outcomes if o.outcome == OK)
        await self._after_write()
        return outcomes

    async def promote_due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        promoted = await self._mem.promote_due(now, limit)
        self._mark(i for i, _ in promoted)
        await self._after_write()
        return promoted

    async def find_jobs(self, filter: JobFilter, limit: int, cursor: str | None = None) -> tuple[list[Job], str | None]:
        if _unfinished_only(filter):
            return await self._mem.find_jobs(filter, limit, cursor)
        await self.flush()
        return await self._disk.find_jobs(filter, limit, cursor)

    async def count_jobs(self, queues: Sequence[str] | None = None) -> dict[str, QueueCounts]:
        await self.flush()
        return await self._disk.count_jobs(queues)

    async def delete_jobs(
        self, ids: Sequence[str] | None = None, filter: JobFilter | None = None, limit: int = 1000
    ) -> list[Job]:
        if ids is not None:
            await self._fault_in(ids)
            deleted = await self._mem.delete_jobs(ids=ids)
        elif filter is not None and _unfinished_only(filter):
            deleted = await self._mem.delete_jobs(filter=filter, limit=limit)
        elif filter is not None:
            await self.flush()
            victims, _ = await self._disk.find_jobs(filter, limit)
            await self._fault_in([j.id for j in victims])
            deleted = await self._mem.delete_jobs(ids=[j.id for j in victims])
        else:
            return []
        self._mark(j.id for j in deleted)
        await self._after_write()
        return deleted

    async def rename_queue(self, old: str, new: str, now: datetime) -> int:
        await self.flush()
        moved = await self._disk.rename_queue(old, new, now)
        await self._mem.rename_queue(old, new, now)
        return moved

    async def queue_names(self) -> list[str]:
        await self.flush()
        return await self._disk.queue_names()

    # ------------------------------------------------------------------ queue configs
    async def get_queue_configs(self) -> dict[str, QueueConfig]:
        return await self._mem.get_queue_configs()

    async def put_queue_config(self, config: QueueConfig) -> None:
        await self._mem.put_queue_config(config)
        self._dirty_configs.add(config.name)

    async def delete_queue_config(self, name: str) -> None:
        await self._mem.delete_queue_config(name)
        self._dirty_configs.add(name)

    # ------------------------------------------------------------------ schedules
    async def put_schedule(self, schedule: Schedule) -> None:
        await self._mem.put_schedule(schedule)
        self._dirty_schedules.add(schedule.name)

    async def get_schedule(self, name: str) -> Schedule | None:
        return await self._mem.get_schedule(name)

    async def list_schedules(self, active_only: bool = False) -> list[Schedule]:
        return await self._mem.list_schedules(active_only)

    async def delete_schedule(self, name: str) -> bool:
        deleted = await self._mem.delete_schedule(name)
        self._dirty_schedules.add(name)
        return deleted

    async def fire_schedule(
        self,
        name: str,
        expected_next_run_at: datetime | None,
        updates: dict[str, Any],
        jobs: Sequence[Job],
        now: datetime,
    ) -> bool:
        fired = await self._mem.fire_schedule(name, expected_next_run_at, updates, jobs, now)
        if fired:
            self._dirty_schedules.add(name)
            self._mark(j.id for j in jobs)
            await self._after_write()
        return fired

    # ------------------------------------------------------------------ optional
    async def shed(self) -> None:
        await self.flush()
        await self._disk.shed()
