"""Embedded-engine benchmark: produce / consume / end-to-end, single-call and batch 50, memory and SQLite,
against a raw sqlite3 claim+ack loop (the floor) and Huey's SQLite queue (the peer), in one run.

Durability, stated so the comparison is fair:

* rustqueue SQLite: its default, WAL journal with ``synchronous=NORMAL`` (a commit survives a killed
  process, not a power cut), group commit.
* raw sqlite3 floor: the same pragmas (WAL, ``synchronous=NORMAL``), one connection, the minimal
  schema a claim/ack queue needs; claim and ack are separate transactions, as in rustqueue.
* Huey ``SqliteHuey`` at its defaults: WAL journal, ``fsync=None`` (leaves SQLite's compiled-in
  ``synchronous`` in place, FULL on this build: an fsync per commit), 8 MB cache, ``begin exclusive``
  per write. Because that is a stronger durability level than rustqueue's default, Huey is also
  measured with ``synchronous=NORMAL`` (same level as rustqueue); the targets use that variant.
  Huey has no claim/ack: a dequeue deletes the row, so its consume is one write per job, where
  rustqueue's is two (claim, ack). The task returns None, so Huey stores no result.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    Case,
    Result,
    Target,
    floor_target,
    rate_of,
    ratio_target,
    render_table,
    render_targets,
    run_interleaved,
    timed,
    write_section,
    write_targets,
)

BATCH = 50
DEFAULT_N = 5_000
CONCURRENT_PUSHERS = 100
QUEUE = "bench"


# ----------------------------------------------------------------------------- rustqueue


async def _engine(kind: str, workdir: Path) -> Any:
    """A fresh engine: ``memory``, ``sqlite`` (a new file) or a PostgreSQL URL (a new schema)."""
    from rustqueue_core import RustQueue

    if kind == "memory":
        builder = RustQueue.memory()
    elif kind == "sqlite":
        builder = RustQueue.sqlite(str(workdir / f"rq-{uuid.uuid4().hex}.db"))
    else:
        builder = RustQueue.open(kind).storage_options(schema=f"bench_{uuid.uuid4().hex[:12]}")
    return await builder.housekeeping(False).build()


#: The large-payload case: a 10 KB string in each job's data.
PAD_10KB = "x" * 10_000


def _items(start: int, stop: int, pad: str | None = None) -> list[dict[str, Any]]:
    if pad is not None:
        return [{"name": "job", "data": {"i": i, "pad": pad}} for i in range(start, stop)]
    return [{"name": "job", "data": {"i": i}} for i in range(start, stop)]


def rq_cases(kind: str, n: int, workdir: Path) -> dict[str, Case]:
    async def produce(batch: int) -> float:
        rq = await _engine(kind, workdir)
        try:

            async def run() -> None:
                if batch == 1:
                    for i in range(n):
                        await rq.push(QUEUE, "job", {"i": i})
                else:
                    for start in range(0, n, batch):
                        await rq.push_batch(QUEUE, _items(start, start + batch))

            return await timed(run)
        finally:
            await rq.close()

    async def consume_loop(rq: Any, batch: int, wait: float | None) -> None:
        done = 0
        while done < n:
            jobs = await rq.claim(QUEUE, batch, wait=wait)
            if not jobs:
                continue
            if batch == 1:
                await rq.ack(jobs[0].id, None)
            else:
                await rq.ack_batch([j.id for j in jobs])
            done += len(jobs)

    async def consume(batch: int, pad: str | None = None) -> float:
        rq = await _engine(kind, workdir)
        try:
            for start in range(0, n, 500):
                await rq.push_batch(QUEUE, _items(start, min(n, start + 500), pad))
            return await timed(lambda: consume_loop(rq, batch, None))
        finally:
            await rq.close()

    async def end_to_end(batch: int) -> float:
        rq = await _engine(kind, workdir)
        try:

            async def producer() -> None:
                for start in range(0, n, batch):
                    if batch == 1:
                        await rq.push(QUEUE, "job", {"i": start})
                    else:
                        await rq.push_batch(QUEUE, _items(start, start + batch))

            async def run() -> None:
                await asyncio.gather(producer(), consume_loop(rq, batch, 1.0))

            return await timed(run)
        finally:
            await rq.close()

    async def concurrent_pushes() -> float:
        rq = await _engine(kind, workdir)
        try:
            per_task = n // CONCURRENT_PUSHERS

            async def pusher(t: int) -> None:
                for i in range(per_task):
                    await rq.push(QUEUE, "job", {"t": t, "i": i})

            async def run() -> None:
                await asyncio.gather(*(pusher(t) for t in range(CONCURRENT_PUSHERS)))

            return await timed(run)
        finally:
            await rq.close()

    return {
        "produce single": lambda: produce(1),
        "produce batch50": lambda: produce(BATCH),
        "consume single": lambda: consume(1),
        "consume batch50": lambda: consume(BATCH),
        "consume batch50 (10 KB)": lambda: consume(BATCH, PAD_10KB),
        "e2e single": lambda: end_to_end(1),
        "e2e batch50": lambda: end_to_end(BATCH),
        f"{CONCURRENT_PUSHERS} concurrent single pushes": concurrent_pushes,
    }


# ----------------------------------------------------------------------------- raw sqlite3 floor

_RAW_SCHEMA = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, queue TEXT NOT NULL, state TEXT NOT NULL, sort_key BLOB NOT NULL,
  data TEXT NOT NULL, result TEXT, started_at INTEGER, completed_at INTEGER);
CREATE INDEX jobs_claim ON jobs (queue, sort_key) WHERE state = 'waiting';
"""
_RAW_INSERT = "INSERT INTO jobs (id, queue, state, sort_key, data) VALUES (?, 'bench', 'waiting', ?, ?)"
_RAW_CLAIM = (
    "UPDATE jobs SET state = 'active', started_at = ? WHERE id IN (SELECT id FROM jobs WHERE queue = 'bench' "
    "AND state = 'waiting' ORDER BY sort_key LIMIT ?) RETURNING id, data"
)


def _raw_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_RAW_SCHEMA)
    return conn


def _raw_rows(start: int, stop: int, pad: str | None = None) -> list[tuple[str, bytes, str]]:
    if pad is not None:
        return [(str(uuid.uuid4()), i.to_bytes(8, "big"), f'{{"i":{i},"pad":"{pad}"}}') for i in range(start, stop)]
    return [(str(uuid.uuid4()), i.to_bytes(8, "big"), f'{{"i":{i}}}') for i in range(start, stop)]


#: A claim of up to n jobs in its own transaction, returning their keys; an ack of such keys.
ClaimFn = Callable[[sqlite3.Connection, int], list[Any]]
AckFn = Callable[[sqlite3.Connection, list[Any]], None]


def raw_claim(conn: sqlite3.Connection, batch: int) -> list[str]:
    """The floor's claim of up to ``batch`` jobs, in its own transaction; their ids."""
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(_RAW_CLAIM, (time.time_ns() // 1_000, batch)).fetchall()
    conn.execute("COMMIT")
    return [r[0] for r in rows]


def raw_ack(conn: sqlite3.Connection, ids: list[str]) -> None:
    """The floor's ack of ``ids``, in its own transaction."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        f"UPDATE jobs SET state = 'completed', completed_at = 1 WHERE state = 'active' AND id IN ({marks(ids)})",
        ids,
    )
    conn.execute("COMMIT")


#: A claim's lease in the SQL-only loops.
_LEASE_MS = 30_000


def rustqueue_claim(conn: sqlite3.Connection, batch: int) -> list[str]:
    """rustqueue's own claim statement (the one it runs when no delayed job is due), run through sqlite3
    in its own transaction; the claimed ids."""
    from rustqueue_core.builtin import sqlite_ops

    now_us = time.time_ns() // 1_000
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(
        sqlite_ops._CLAIM_WAITING, (now_us, None, _LEASE_MS, now_us + _LEASE_MS * 1_000, QUEUE, batch)
    ).fetchall()
    conn.execute("COMMIT")
    return [r[0] for r in rows]


def rustqueue_ack(conn: sqlite3.Connection, ids: list[str]) -> None:
    """rustqueue's own batch-ack statement, run through sqlite3 in its own transaction."""
    from rustqueue_core.builtin import sqlite_ops

    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        f"UPDATE jobs SET {sqlite_ops._COMPLETE_SET}, result = NULL WHERE state = 'active' "
        f"AND id IN ({marks(ids)}) RETURNING id, rev",
        [time.time_ns() // 1_000, *ids],
    ).fetchall()
    conn.execute("COMMIT")


def claim_ack_all(conn: sqlite3.Connection, n: int, batch: int, claim: ClaimFn, ack: AckFn) -> None:
    """Claim and ack ``n`` jobs, ``batch`` per claim, each claim and each ack its own transaction."""
    done = 0
    while done < n:
        ids = claim(conn, batch)
        ack(conn, ids)
        done += len(ids)


def marks(ids: list[str]) -> str:
    return ",".join("?" * len(ids))


def raw_cases(n: int, workdir: Path) -> dict[str, Case]:
    def produce(conn: sqlite3.Connection, batch: int) -> None:
        for start in range(0, n, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_RAW_INSERT, _raw_rows(start, start + batch))
            conn.execute("COMMIT")

    def claim_ack(conn: sqlite3.Connection, batch: int) -> None:
        claim_ack_all(conn, n, batch, raw_claim, raw_ack)

    def case(prefill: bool, body: Callable[[sqlite3.Connection], None], pad: str | None = None) -> Case:
        async def run() -> float:
            conn = _raw_conn(workdir / f"raw-{uuid.uuid4().hex}.db")
            try:
                if prefill:
                    conn.execute("BEGIN")
                    conn.executemany(_RAW_INSERT, _raw_rows(0, n, pad))
                    conn.execute("COMMIT")

                async def go() -> None:
                    body(conn)

                return await timed(go)
            finally:
                conn.close()

        return run

    return {
        "produce single": case(False, lambda c: produce(c, 1)),
        "produce batch50": case(False, lambda c: produce(c, BATCH)),
        "consume single": case(True, lambda c: claim_ack(c, 1)),
        "consume batch50": case(True, lambda c: claim_ack(c, BATCH)),
        "consume batch50 (10 KB)": case(True, lambda c: claim_ack(c, BATCH), PAD_10KB),
    }


# ----------------------------------------------------------------------------- rustqueue's SQL alone

SQL_ONLY = "rustqueue SQL, no engine"


def sql_only_cases(n: int, workdir: Path) -> dict[str, Case]:
    """rustqueue's own claim and ack statements, run straight through ``sqlite3`` (same transactions as
    the raw floor) on a store the engine filled: what rustqueue's schema costs with no engine around it.
    Between this and the raw floor lies the schema (leases, the state index, the wide row); between
    this and ``rustqueue sqlite`` lies the engine (row cache, Job objects, events, the writer)."""

    def claim_ack(conn: sqlite3.Connection, batch: int) -> None:
        claim_ack_all(conn, n, batch, rustqueue_claim, rustqueue_ack)

    def case(batch: int, pad: str | None = None) -> Case:
        async def run() -> float:
            path = workdir / f"sql-{uuid.uuid4().hex}.db"
            from rustqueue_core import RustQueue

            rq = await RustQueue.sqlite(str(path)).housekeeping(False).build()
            try:
                for start in range(0, n, 500):
                    await rq.push_batch(QUEUE, _items(start, min(n, start + 500), pad))
            finally:
                await rq.close()
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous = NORMAL")
            try:

                async def go() -> None:
                    claim_ack(conn, batch)

                return await timed(go)
            finally:
                conn.close()

        return run

    return {
        "consume single": case(1),
        "consume batch50": case(BATCH),
        "consume batch50 (10 KB)": case(BATCH, PAD_10KB),
    }


# ----------------------------------------------------------------------------- Huey (SQLite storage)


def huey_cases(n: int, workdir: Path, synchronous: str | None) -> dict[str, Case]:
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class PragmaStorage(SqliteStorage):  # type: ignore[misc]
        """Huey's storage with one pragma more: ``synchronous`` set to rustqueue's level."""

        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            return conn

    def make() -> tuple[Any, Any]:
        extra: dict[str, Any] = {"storage_class": PragmaStorage} if synchronous else {}
        huey = SqliteHuey(filename=str(workdir / f"huey-{uuid.uuid4().hex}.db"), **extra)

        @huey.task()  # type: ignore[misc]
        def job(i: int) -> None:
            return None

        return huey, job

    def drain(huey: Any, count: int) -> None:
        done = 0
        while done < count:
            task = huey.dequeue()
            if task is None:
                continue
            huey.execute(task)
            done += 1

    async def produce() -> float:
        _, job = make()

        async def go() -> None:
            for i in range(n):
                job(i)

        return await timed(go)

    async def consume() -> float:
        huey, job = make()
        for i in range(n):
            job(i)

        async def go() -> None:
            drain(huey, n)

        return await timed(go)

    async def e2e() -> float:
        huey, job = make()

        async def go() -> None:
            # Huey's consumer is a separate process/thread pool; alternating in one thread measures
            # the same storage work without thread hand-offs, which favours Huey if anything.
            for i in range(n):
                job(i)
                drain(huey, 1)

        return await timed(go)

    return {"produce single": produce, "consume single": consume, "e2e single": e2e}


# ----------------------------------------------------------------------------- driver

HUEY_DEFAULT = "huey sqlite (defaults)"
HUEY_NORMAL = "huey sqlite (synchronous=NORMAL)"


def import_rss_mb() -> dict[str, float]:
    """RSS of a fresh interpreter after ``import rustqueue_core`` (VmRSS now, VmHWM peak).

    ``ru_maxrss`` is not used: Linux carries it across fork+exec from the (large) benchmark process."""
    code = (
        "import rustqueue_core\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith(('VmRSS', 'VmHWM')): print(line.split()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    bare = subprocess.run(
        [sys.executable, "-c", code.replace("import rustqueue_core\n", "")], capture_output=True, text=True, check=True
    ).stdout.split()
    return {"VmRSS": int(out[0]) / 1024, "VmHWM": int(out[1]) / 1024, "bare": int(bare[0]) / 1024}


def _decomposition(results: list[Result]) -> str:
    """Where batch claim+ack time goes: the schema (raw floor → rustqueue's SQL) and the engine
    (rustqueue's SQL → ``rustqueue sqlite``), as µs per job from the medians of this run."""
    case = "consume batch50"
    raw, sql, engine = (rate_of(results, case, s) for s in ("raw sqlite3 floor", SQL_ONLY, "rustqueue sqlite"))
    if raw is None or sql is None or engine is None:
        return ""
    per_job = [1e6 / r for r in (raw, sql, engine)]
    engine_us = per_job[2] - per_job[1]
    return (
        f"Where batch-50 claim+ack time goes, per job: the raw floor takes {per_job[0]:.1f} µs. rustqueue's own "
        f"claim and ack statements run with no engine around them ({SQL_ONLY!r}) take {per_job[1]:.1f} µs "
        f"({sql / raw:.2f}× of the floor's rate): the schema's cost (leases, the state index that lease expiry "
        f"and retention read, the wide row). The engine then adds {engine_us:+.1f} µs: the writer, the row cache, "
        "Job objects and events, less what it gains by checkpointing the WAL on another thread (both loops "
        "checkpoint inline).\n\n"
    )


def sqlite_default_synchronous() -> str:
    value = sqlite3.connect(":memory:").execute("PRAGMA synchronous").fetchone()[0]
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(value, str(value))


async def run(n: int, repeats: int, write: bool, command: str) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="rq-bench-") as tmp:
        workdir = Path(tmp)
        systems: list[tuple[str, dict[str, Case]]] = [
            ("rustqueue sqlite", rq_cases("sqlite", n, workdir)),
            ("rustqueue memory", rq_cases("memory", n, workdir)),
            ("raw sqlite3 floor", raw_cases(n, workdir)),
            (SQL_ONLY, sql_only_cases(n, workdir)),
            (HUEY_DEFAULT, huey_cases(n, workdir, None)),
            (HUEY_NORMAL, huey_cases(n, workdir, "NORMAL")),
        ]
        pushed = n // CONCURRENT_PUSHERS * CONCURRENT_PUSHERS
        ops = {"default": n, f"{CONCURRENT_PUSHERS} concurrent single pushes": pushed}
        results = await run_interleaved("embedded", systems, ops, repeats)
    ratios: dict[str, tuple[str, str]] = {}
    for r in results:
        key = f"embedded/{r.case}/{r.system}"
        if r.system.startswith("rustqueue") and r.case.startswith(("produce", "consume")):
            ratios[key] = (f"embedded/{r.case}/raw sqlite3 floor", "raw floor")
        if r.system.startswith("rustqueue") and r.case == "e2e single":
            ratios[key] = (f"embedded/{r.case}/{HUEY_NORMAL}", "Huey (NORMAL)")
    rss = import_rss_mb()
    targets = [
        ratio_target(
            "SQLite batch-50 claim+ack ≥ 80% of the raw sqlite3 floor",
            results,
            "consume batch50",
            "rustqueue sqlite",
            "raw sqlite3 floor",
            0.8,
        ),
        ratio_target(
            "single-call end-to-end ≥ 4× Huey (SQLite, same synchronous=NORMAL)",
            results,
            "e2e single",
            "rustqueue sqlite",
            HUEY_NORMAL,
            4.0,
        ),
        ratio_target(
            "single-call end-to-end ≥ 4× Huey (Huey at its defaults)",
            results,
            "e2e single",
            "rustqueue sqlite",
            HUEY_DEFAULT,
            4.0,
        ),
        floor_target(
            f"{CONCURRENT_PUSHERS} concurrent single pushes ≥ 20,000/s (SQLite, group commit)",
            results,
            f"{CONCURRENT_PUSHERS} concurrent single pushes",
            "rustqueue sqlite",
            20_000,
        ),
        Target(
            "`import rustqueue_core` under 25 MB RSS",
            f"{rss['VmRSS']:.1f} MB (peak {rss['VmHWM']:.1f})",
            rss["VmRSS"] < 25,
        ),
    ]
    table = render_table(results, ratios)
    body = (
        f"{table}\n\n"
        f"{_decomposition(results)}"
        f"n = {n:,} jobs per case for every system, {repeats} repeats, systems interleaved per case; batch = {BATCH}; "
        f"the concurrent case runs {CONCURRENT_PUSHERS} tasks pushing one job per call; the 10 KB case puts a "
        "10,000-character string in every job's data (the raw floor stores it inline, in its one table). "
        f"Durability: rustqueue and the raw floor use WAL + synchronous=NORMAL; Huey defaults are WAL, "
        f"fsync=None (SQLite's default synchronous, {sqlite_default_synchronous()} here), 8 MB cache.\n\n"
        f"`import rustqueue_core`: VmRSS {rss['VmRSS']:.1f} MB, peak {rss['VmHWM']:.1f} MB "
        f"(a bare interpreter: {rss['bare']:.1f} MB).\n\n"
        f"Targets:\n\n{render_targets(targets)}"
    )
    print(body)
    if write:
        write_section("embedded", body, command)
        write_targets("embedded", targets, command)
    return results
