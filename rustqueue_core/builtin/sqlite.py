"""The SQLite storage backend (``sqlite:///path.db``), rustqueue's durable embedded default.

* WAL journal; ``synchronous=NORMAL`` survives a killed process (``durable``); ``?durability=full``
  also survives an OS crash or power loss (``power_safe``).
* Writes go through one writer connection per process that **group-commits** (see
  :mod:`rustqueue_core.builtin.sqlite_writer`): everything submitted together runs in one short
  ``BEGIN IMMEDIATE`` transaction (each operation isolated by a SAVEPOINT), and every caller returns
  only after that COMMIT. Reads use a second connection and see every committed write.
* Claims and acks are one statement per batch (``UPDATE ... RETURNING``); the writer keeps the rows it
  inserted and claimed, validated by a per-row revision counter, so those statements return only the
  columns they changed.
* Several processes may share the file (``multi_process``): ``BEGIN IMMEDIATE`` serialises writers,
  so a claim never hands a job to two processes; a busy file is retried.
* ``?mode=hybrid`` serves from memory and writes back to the file (see
  :mod:`rustqueue_core.builtin.sqlite_hybrid`).

URL options: ``durability=normal|full``, ``mode=hybrid``, ``snapshot_interval`` (seconds, hybrid),
``max_dirty`` (hybrid), ``busy_timeout`` (seconds).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rustqueue_core.builtin import sqlite_admin as admin
from rustqueue_core.builtin import sqlite_ops as ops
from rustqueue_core.builtin import sqlite_query as query
from rustqueue_core.builtin.sqlite_schema import opt_us, to_us
from rustqueue_core.builtin.sqlite_writer import DEFAULT_BUSY_TIMEOUT_S, GroupCommitWriter, connect
from rustqueue_core.errors import ConfigError
from rustqueue_core.hookspecs import hookimpl
from rustqueue_core.models import Capabilities, Job, QueueConfig, QueueCounts, Schedule, StorageSpec
from rustqueue_core.rowcache import RowCache
from rustqueue_core.storage import (
    Change,
    ChangeOutcome,
    CompleteItem,
    CompleteOutcome,
    JobFilter,
    Storage,
)

MAX_BATCH = 10_000


def sqlite_capabilities(durability: str = "normal") -> Capabilities:
    return Capabilities(
        durable=True,
        power_safe=durability == "full",
        multi_process=True,
        group_limits=True,
        claims_due_delayed=True,
        wakeups=False,
        ordered_writes=True,  # one writer, fed in submission order (see sqlite_writer)
        max_batch=MAX_BATCH,
    )


class SQLiteStorage:
    """Durable SQLite storage with group commit. Build it through :func:`create_storage` or directly."""

    def __init__(
        self,
        path: str | Path,
        *,
        durability: str = "normal",
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        if durability not in ("normal", "full"):
            raise ConfigError(f"sqlite durability must be 'normal' or 'full', got {durability!r}")
        self.path = Path(path)
        self.durability = durability
        self.capabilities = sqlite_capabilities(durability)
        self._busy_timeout_s = busy_timeout_s
        self._writer = GroupCommitWriter(
            self.path,
            synchronous="FULL" if durability == "full" else "NORMAL",
            busy_timeout_s=busy_timeout_s,
            on_open=ops.migrate,
            merge={ops.insert_jobs: ops.insert_jobs_merged},
        )
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._rows = RowCache()

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r}, durability={self.durability!r})"

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if self._reader is not None:
            return
        if str(self.path) != ":memory:" and self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._writer.start()
        self._reader = connect(self.path, synchronous="NORMAL", busy_timeout_s=self._busy_timeout_s, readonly=True)
        self._reader.execute("PRAGMA query_only = 1")

    async def close(self) -> None:
        await self._writer.stop()
        if self._reader is not None:
            with self._read_lock:
                self._reader.close()
            self._reader = None

    @property
    def group_commit_stats(self) -> tuple[int, int]:
        """``(commits, operations)`` of this process's writer since open."""
        return self._writer.commits, self._writer.operations

    def _read(self, fn: Any, *args: Any) -> Any:
        conn = self._reader
        if conn is None:
            raise RuntimeError("SQLite storage is not open")
        with self._read_lock:
            return fn(conn, *args)

    # ------------------------------------------------------------------ jobs
    async def insert_jobs(self, jobs: Sequence[Job], now: datetime) -> None:
        if jobs:
            await self._writer.submit(ops.insert_jobs, list(jobs), self._rows)

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        if not ids:
            return []
        result: list[Job | None] = self._read(query.get_jobs, list(ids))
        return result

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
        if n <= 0:
            return []
        jobs: list[Job] = await self._writer.submit(
            ops.claim, queue, min(n, MAX_BATCH), to_us(now), consumer_id, lease_ms, group_limit, self._rows
        )
        return jobs

    async def complete(self, items: Sequence[CompleteItem], now: datetime) -> list[CompleteOutcome]:
        if not items:
            return []
        outcomes: list[CompleteOutcome] = await self._writer.submit(ops.complete, list(items), to_us(now), self._rows)
        return outcomes

    async def transition(self, changes: Sequence[Change], now: datetime) -> list[ChangeOutcome]:
        if not changes:
            return []
        outcomes: list[ChangeOutcome] = await self._writer.submit(ops.transition, list(changes), to_us(now), self._rows)
        return outcomes

    async def promote_due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        promoted: list[tuple[str, str]] = await self._writer.submit(ops.promote_due, to_us(now), limit)
        return promoted

    async def find_jobs(self, filter: JobFilter, limit: int, cursor: str | None = None) -> tuple[list[Job], str | None]:
        page: tuple[list[Job], str | None] = self._read(query.find_jobs, filter, limit, cursor)
        return page

    async def count_jobs(self, queues: Sequence[str] | None = None) -> dict[str, QueueCounts]:
        counts: dict[str, QueueCounts] = self._read(query.count_jobs, None if queues is None else list(queues))
        return counts

    async def delete_jobs(
        self, ids: Sequence[str] | None = None, filter: JobFilter | None = None, limit: int = 1000
    ) -> list[Job]:
        if ids is not None and not ids:
            return []
        deleted: list[Job] = await self._writer.submit(
            admin.delete_jobs, None if ids is None else list(ids), filter, limit, self._rows
        )
        return deleted

    async def rename_queue(self, old: str, new: str, now: datetime) -> int:
        moved: int = await self._writer.submit(admin.rename_queue, old, new, to_us(now), self._rows)
        return moved

    async def queue_names(self) -> list[str]:
        names: list[str] = self._read(query.queue_names)
        return names

    # ------------------------------------------------------------------ queue configs
    async def get_queue_configs(self) -> dict[str, QueueConfig]:
        configs: dict[str, QueueConfig] = self._read(query.get_queue_configs)
        return configs

    async def put_queue_config(self, config: QueueConfig) -> None:
        await self._writer.submit(admin.put_queue_config, config)

    async def delete_queue_config(self, name: str) -> None:
        await self._writer.submit(admin.delete_queue_config, name)

    # ------------------------------------------------------------------ schedules
    async def put_schedule(self, schedule: Schedule) -> None:
        await self._writer.submit(admin.put_schedule, schedule)

    async def get_schedule(self, name: str) -> Schedule | None:
        schedule: Schedule | None = self._read(query.get_schedule, name)
        return schedule

    async def list_schedules(self, active_only: bool = False) -> list[Schedule]:
        schedules: list[Schedule] = self._read(query.list_schedules, active_only)
        return schedules

    async def delete_schedule(self, name: str) -> bool:
        deleted: bool = await self._writer.submit(admin.delete_schedule, name)
        return deleted

    async def fire_schedule(
        self,
        name: str,
        expected_next_run_at: datetime | None,
        updates: dict[str, Any],
        jobs: Sequence[Job],
        now: datetime,
    ) -> bool:
        fired: bool = await self._writer.submit(
            admin.fire_schedule, name, opt_us(expected_next_run_at), dict(updates), list(jobs)
        )
        return fired

    # ------------------------------------------------------------------ optional
    async def wait(self, queues: Sequence[str], timeout: float) -> bool:
        """Poll ``PRAGMA data_version`` (changes when any other connection commits): a cheap
        cross-process nudge. Returns True when the file changed within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        start = self._read(_data_version)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.05, remaining))
            if self._read(_data_version) != start:
                return True

    async def shed(self) -> None:
        self._read(lambda conn: conn.execute("PRAGMA shrink_memory"))

    async def run_write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in the next group transaction (used by the hybrid mode's flushes)."""
        return await self._writer.submit(fn, *args)

    def read(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on the read connection (used by the hybrid mode)."""
        return self._read(fn, *args)


def _data_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA data_version").fetchone()
    return int(row[0])


# ---------------------------------------------------------------------------------------- URL / plugin


def parse_sqlite_url(url: str, options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    """``sqlite:///relative.db`` / ``sqlite:////abs.db`` → (path, options); explicit options win."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ConfigError(f"not a sqlite URL: {url!r}")
    path = unquote(parts.netloc + parts.path)
    if path.startswith("/") and not parts.netloc:
        path = path[1:]
    if not path:
        raise ConfigError(f"sqlite URL needs a file path: {url!r} (e.g. sqlite:///jobs.db)")
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigError("an in-memory SQLite database cannot be shared by a writer and readers: use memory://")
    merged = dict(parse_qsl(parts.query))
    merged.update({k: str(v) for k, v in (options or {}).items()})
    return path, merged


def create_storage(url: str, options: Mapping[str, Any] | None = None) -> Storage:
    path, opts = parse_sqlite_url(url, options)
    known = {"durability", "mode", "snapshot_interval", "max_dirty", "busy_timeout"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigError(f"unknown sqlite URL option(s): {', '.join(unknown)}")
    durability = opts.get("durability", "normal")
    busy_timeout_s = float(opts.get("busy_timeout", DEFAULT_BUSY_TIMEOUT_S))
    mode = opts.get("mode", "direct")
    if mode == "hybrid":
        from rustqueue_core.builtin.sqlite_hybrid import HybridSQLiteStorage

        return HybridSQLiteStorage(
            path,
            durability=durability,
            snapshot_interval=float(opts.get("snapshot_interval", 1.0)),
            max_dirty=int(opts.get("max_dirty", 5000)),
            busy_timeout_s=busy_timeout_s,
        )
    if mode not in ("direct", "durable"):
        raise ConfigError(f"sqlite mode must be 'hybrid' or omitted, got {mode!r}")
    return SQLiteStorage(path, durability=durability, busy_timeout_s=busy_timeout_s)


SQLITE_SPEC = StorageSpec(
    name="sqlite",
    schemes=("sqlite",),
    description=("SQLite file (WAL, group commit); ?durability=full for power safety, ?mode=hybrid for write-back"),
    capabilities=sqlite_capabilities(),
    factory=create_storage,
)


@hookimpl
def rustqueue_storage_backends() -> StorageSpec:
    return SQLITE_SPEC
