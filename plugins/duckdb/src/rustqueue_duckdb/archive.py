"""The archiver: finished jobs go to a DuckDB file in batches, off the engine's hot path.

``record(events)`` runs inside ``rustqueue_jobs_changed`` on the engine loop: it only appends the batch to a
bounded buffer (no I/O, no await). A background task flushes the buffer every ``flush_interval`` or once
``flush_rows`` events are waiting: it reads the jobs the events name (one ``get_jobs`` call for those the
events do not carry), builds column lists, and appends them with ONE ``INSERT … SELECT unnest(…)`` in a
worker thread. The DuckDB file is opened per flush and closed right after, so ``rustqueue history`` (another
process) can read it between flushes: DuckDB allows one writing process at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from rustqueue_core.models import Job, JobEvent

logger = logging.getLogger("rustqueue.duckdb")

#: Engine event kind → archived outcome.
ARCHIVED_EVENTS = {
    "job.completed": "completed",
    "job.dlq": "dlq",
    "job.retrying": "failed_attempt",
    "job.cancelled": "cancelled",
}

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS rq_history_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS archived_jobs (
    job_id VARCHAR NOT NULL,
    queue VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    priority VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ NOT NULL,
    wait_ms DOUBLE,
    run_ms DOUBLE,
    last_error VARCHAR,
    flow_id VARCHAR,
    group_id VARCHAR,
    worker_id VARCHAR
);
"""

_COLUMNS = (
    "job_id",
    "queue",
    "name",
    "outcome",
    "attempt",
    "max_attempts",
    "priority",
    "created_at",
    "started_at",
    "finished_at",
    "wait_ms",
    "run_ms",
    "last_error",
    "flow_id",
    "group_id",
    "worker_id",
)
_INSERT = (
    f"INSERT INTO archived_jobs ({', '.join(_COLUMNS)}) SELECT * FROM (SELECT "
    + ", ".join(f"unnest(${i + 1})" for i in range(len(_COLUMNS)))
    + ")"
)


class HistoryConfig(msgspec.Struct, kw_only=True):
    """The ``[history]`` table of ``rustqueue.toml``."""

    enabled: bool = True
    path: str = "data/rustqueue-history.duckdb"
    flush_interval_ms: int = 1000
    flush_rows: int = 5000
    max_buffer: int = 200_000


def connect(path: str | Path, *, read_only: bool = False, attempts: int = 40) -> Any:
    """Open the DuckDB file, retrying while another process holds its write lock."""
    import duckdb

    last: Exception | None = None
    for _ in range(attempts):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET enable_progress_bar = false")
            return con
        except duckdb.IOException as exc:  # lock held by the writer between its flushes
            last = exc
            import time

            time.sleep(0.05)
    raise RuntimeError(f"could not open history file {path}: {last}")


def ensure_schema(con: Any) -> None:
    con.execute(SCHEMA)
    row = con.execute("SELECT value FROM rq_history_meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        con.execute(
            "INSERT INTO rq_history_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise RuntimeError(
            f"history file has schema version {row[0]}, newer than this rustqueue-duckdb ({SCHEMA_VERSION})"
        )


def _ms_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() * 1000.0


def rows_for(pairs: Iterable[tuple[JobEvent, Job]]) -> list[list[Any]]:
    """Column lists for one ``INSERT``; a failed attempt's run ends at the event time."""
    columns: list[list[Any]] = [[] for _ in _COLUMNS]
    (
        job_id,
        queue,
        name,
        outcome,
        attempt,
        max_attempts,
        priority,
        created_at,
        started_at,
        finished_at,
        wait_ms,
        run_ms,
        last_error,
        flow_id,
        group_id,
        worker_id,
    ) = columns
    for event, job in pairs:
        kind = ARCHIVED_EVENTS[event.kind]
        finished = job.completed_at if kind == "completed" and job.completed_at else event.timestamp
        job_id.append(job.id)
        queue.append(job.queue)
        name.append(job.name)
        outcome.append(kind)
        attempt.append(event.attempt if event.attempt is not None else job.attempt)
        max_attempts.append(job.max_attempts)
        priority.append(str(job.priority))
        created_at.append(job.created_at)
        started_at.append(job.started_at if kind != "cancelled" else None)
        finished_at.append(finished)
        wait_ms.append(_ms_between(job.created_at, job.started_at) if kind != "cancelled" else None)
        run_ms.append(_ms_between(job.started_at, finished) if kind != "cancelled" else None)
        last_error.append(job.last_error)
        flow_id.append(job.flow_id)
        group_id.append(job.group_id)
        worker_id.append(job.worker_id)
    return columns


def append_rows(path: str | Path, columns: list[list[Any]]) -> int:
    """One transaction, one statement; runs in a worker thread."""
    if not columns[0]:
        return 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = connect(path)
    try:
        ensure_schema(con)
        con.execute(_INSERT, columns)
    finally:
        con.close()
    return len(columns[0])


class Archiver:
    """Buffers archived events and flushes them in batches. One per engine."""

    def __init__(self, engine: Any, config: HistoryConfig) -> None:
        self.engine = engine
        self.config = config
        self.path = Path(config.path)
        self._buffer: deque[JobEvent] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.archived = 0
        self.dropped = 0
        self.flush_failures = 0

    # called on the engine loop from rustqueue_jobs_changed: no I/O, no await
    def record(self, events: Sequence[JobEvent]) -> None:
        buffer = self._buffer
        for event in events:
            if event.kind in ARCHIVED_EVENTS:
                if len(buffer) >= self.config.max_buffer:
                    self.dropped += 1
                    continue
                buffer.append(event)
        if len(buffer) >= self.config.flush_rows:
            self._wake.set()

    async def __aenter__(self) -> Archiver:
        # The file is created by the background task, so importing DuckDB never delays readiness.
        self._task = asyncio.create_task(self._run(), name="rustqueue-history-archiver")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()  # the final flush: nothing recorded is left behind

    def _init_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.path)
        try:
            ensure_schema(con)
        finally:
            con.close()

    async def _run(self) -> None:
        interval = self.config.flush_interval_ms / 1000
        try:
            async with self._lock:
                await asyncio.to_thread(self._init_file)
        except Exception:
            self.flush_failures += 1
            logger.exception("history file %s could not be opened; flushes will retry", self.path)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                self.flush_failures += 1
                logger.exception("history flush failed; the batch is kept for the next try")
                await asyncio.sleep(min(5.0, interval * 2))

    async def flush(self) -> int:
        """Archive everything buffered now. Returns the number of rows written."""
        async with self._lock:
            if not self._buffer:
                return 0
            batch = list(self._buffer)
            pairs = await self._resolve(batch)
            columns = rows_for(pairs)
            written = await asyncio.to_thread(append_rows, self.path, columns)
            # Only now drop what was written: a failed write keeps the batch buffered.
            for _ in range(len(batch)):
                self._buffer.popleft()
            self.archived += written
            return written

    async def _resolve(self, batch: list[JobEvent]) -> list[tuple[JobEvent, Job]]:
        carried: dict[int, Job] = {}
        missing: list[int] = []
        for index, event in enumerate(batch):
            job = getattr(event, "job", None)
            if isinstance(job, Job):
                carried[index] = job
            else:
                missing.append(index)
        if missing:
            jobs = await self.engine.get_jobs([batch[i].job_id for i in missing])
            for index, job in zip(missing, jobs, strict=True):
                if job is not None:
                    carried[index] = job
        return [(batch[i], carried[i]) for i in sorted(carried)]
