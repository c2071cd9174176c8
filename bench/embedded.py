"""Embedded-engine benchmark: produce / consume / end-to-end, single-call and batch 50, memory and SQLite,
against a raw sqlite3 claim+ack loop (the floor) and Huey's SQLite queue (the peer), in one run."""

from __future__ import annotations

import asyncio
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import Result, render_table, timed, write_section

BATCH = 50


# ----------------------------------------------------------------------------- rustqueue


async def _engine(kind: str, workdir: Path):  # type: ignore[no-untyped-def]
    from rustqueue_core import RustQueue

    builder = RustQueue.memory() if kind == "memory" else RustQueue.sqlite(str(workdir / f"rq-{uuid.uuid4().hex}.db"))
    return await builder.housekeeping(False).build()


async def rq_cases(kind: str, n: int, workdir: Path) -> dict[str, Callable[[], Awaitable[float]]]:
    async def produce_single() -> float:
        rq = await _engine(kind, workdir)
        try:
            async def run() -> None:
                for i in range(n):
                    await rq.push("bench", "job", {"i": i})

            return await timed(run)
        finally:
            await rq.close()

    async def produce_batch() -> float:
        rq = await _engine(kind, workdir)
        try:
            async def run() -> None:
                for start in range(0, n, BATCH):
                    await rq.push_batch("bench", [{"name": "job", "data": {"i": i}} for i in range(start, start + BATCH)])

            return await timed(run)
        finally:
            await rq.close()

    async def consume(batch: int) -> float:
        rq = await _engine(kind, workdir)
        try:
            for start in range(0, n, 500):
                await rq.push_batch("bench", [{"name": "job", "data": {"i": i}} for i in range(start, start + 500)])

            async def run() -> None:
                done = 0
                while done < n:
                    jobs = await rq.claim("bench", batch)
                    if batch == 1:
                        await rq.ack(jobs[0].id, None)
                    else:
                        await rq.ack_batch([j.id for j in jobs])
                    done += len(jobs)

            return await timed(run)
        finally:
            await rq.close()

    async def end_to_end(batch: int) -> float:
        rq = await _engine(kind, workdir)
        try:
            async def producer() -> None:
                if batch == 1:
                    for i in range(n):
                        await rq.push("bench", "job", {"i": i})
                else:
                    for start in range(0, n, batch):
                        await rq.push_batch("bench", [{"name": "job", "data": {"i": i}} for i in range(start, start + batch)])

            async def consumer() -> None:
                done = 0
                while done < n:
                    jobs = await rq.claim("bench", batch, wait=1.0)
                    if not jobs:
                        continue
                    if batch == 1:
                        await rq.ack(jobs[0].id, None)
                    else:
                        await rq.ack_batch([j.id for j in jobs])
                    done += len(jobs)

            async def run() -> None:
                await asyncio.gather(producer(), consumer())

            return await timed(run)
        finally:
            await rq.close()

    async def concurrent_pushes() -> float:
        rq = await _engine(kind, workdir)
        try:
            per_task = n // 100

            async def pusher(t: int) -> None:
                for i in range(per_task):
                    await rq.push("bench", "job", {"t": t, "i": i})

            async def run() -> None:
                await asyncio.gather(*(pusher(t) for t in range(100)))

            return await timed(run)
        finally:
            await rq.close()

    return {
        "produce single": produce_single,
        "produce batch50": produce_batch,
        "consume single": lambda: consume(1),
        "consume batch50": lambda: consume(BATCH),
        "e2e single": lambda: end_to_end(1),
        "e2e batch50": lambda: end_to_end(BATCH),
        "100 concurrent single pushes": concurrent_pushes,
    }


# ----------------------------------------------------------------------------- raw sqlite3 floor

_RAW_SCHEMA = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, queue TEXT NOT NULL, state TEXT NOT NULL, sort_key BLOB NOT NULL,
  data TEXT NOT NULL, result TEXT, started_at INTEGER, completed_at INTEGER);
CREATE INDEX jobs_claim ON jobs (queue, sort_key) WHERE state = 'waiting';
"""


def _raw_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_RAW_SCHEMA)
    return conn


def raw_cases(n: int, workdir: Path) -> dict[str, Callable[[], Awaitable[float]]]:
    def fill(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO jobs (id, queue, state, sort_key, data) VALUES (?, 'bench', 'waiting', ?, ?)",
            [(str(uuid.uuid4()), i.to_bytes(8, "big"), f'{{"i":{i}}}') for i in range(n)],
        )
        conn.execute("COMMIT")

    def claim_ack(conn: sqlite3.Connection, batch: int) -> None:
        done = 0
        while done < n:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "UPDATE jobs SET state='active', started_at=? WHERE id IN (SELECT id FROM jobs WHERE queue='bench' "
                "AND state='waiting' ORDER BY sort_key LIMIT ?) RETURNING id, data",
                (done, batch),
            ).fetchall()
            conn.execute("COMMIT")
            ids = [r[0] for r in rows]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"UPDATE jobs SET state='completed', completed_at=1 WHERE state='active' AND id IN ({','.join('?' * len(ids))})",
                ids,
            )
            conn.execute("COMMIT")
            done += len(ids)

    def produce(conn: sqlite3.Connection, batch: int) -> None:
        for start in range(0, n, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO jobs (id, queue, state, sort_key, data) VALUES (?, 'bench', 'waiting', ?, ?)",
                [(str(uuid.uuid4()), i.to_bytes(8, "big"), f'{{"i":{i}}}') for i in range(start, start + batch)],
            )
            conn.execute("COMMIT")

    def case(prefill: bool, body: Callable[[sqlite3.Connection], None]) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            conn = _raw_conn(workdir / f"raw-{uuid.uuid4().hex}.db")
            try:
                if prefill:
                    fill(conn)

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
    }


# ----------------------------------------------------------------------------- Huey (SQLite storage)


def huey_cases(n: int, workdir: Path) -> dict[str, Callable[[], Awaitable[float]]]:
    from huey import SqliteHuey

    def make() -> tuple[SqliteHuey, Callable[..., object]]:
        huey = SqliteHuey(filename=str(workdir / f"huey-{uuid.uuid4().hex}.db"))

        @huey.task()
        def job(i: int) -> dict[str, int]:
            return {"i": i}

        return huey, job

    def drain(huey: SqliteHuey, count: int) -> None:
        done = 0
        while done < count:
            task = huey.dequeue()
            if task is None:
                continue
            huey.execute(task)
            done += 1

    async def produce() -> float:
        huey, job = make()

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
            # Huey's consumer runs in its own thread(s); interleave in one thread for a like-for-like loop.
            for i in range(n):
                job(i)
                drain(huey, 1)

        return await timed(go)

    return {"produce single": produce, "consume single": consume, "e2e single": e2e}


# ----------------------------------------------------------------------------- driver


def import_rss_mb() -> float:
    code = "import resource, rustqueue_core; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.strip()) / 1024


async def run(n: int, repeats: int, write: bool, command: str) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="rq-bench-") as tmp:
        workdir = Path(tmp)
        systems: list[tuple[str, dict[str, Callable[[], Awaitable[float]]]]] = [
            ("rustqueue sqlite", await rq_cases("sqlite", n, workdir)),
            ("rustqueue memory", await rq_cases("memory", n, workdir)),
            ("raw sqlite3 floor", raw_cases(n, workdir)),
            ("huey sqlite", huey_cases(min(n, 5000), workdir)),
        ]
        by_case: dict[tuple[str, str], Result] = {}
        # Interleave systems within each repeat so that machine noise hits all of them alike.
        for _ in range(repeats):
            for system, cases in systems:
                ops = min(n, 5000) if system.startswith("huey") else n
                for case, fn in cases.items():
                    seconds = await fn()
                    res = by_case.setdefault((system, case), Result("embedded", case, system, ops))
                    res.seconds.append(seconds)
                    print(f"{system:20} {case:30} {ops / seconds:>12,.0f} jobs/s", file=sys.stderr)
        results = list(by_case.values())
    ratios = {}
    for r in results:
        if r.system.startswith("rustqueue"):
            if r.case in ("consume batch50", "consume single", "produce batch50", "produce single"):
                ratios[f"embedded/{r.case}/{r.system}"] = (f"embedded/{r.case}/raw sqlite3 floor", "raw floor")
            if r.case in ("e2e single",):
                ratios[f"embedded/{r.case}/{r.system}"] = (f"embedded/{r.case}/huey sqlite", "Huey")
    rss = import_rss_mb()
    table = render_table(sorted(results, key=lambda r: (r.case, r.system)), ratios)
    body = (
        f"{table}\n\n`import rustqueue_core` peak RSS: {rss:.1f} MB.\n\n"
        f"n = {n} jobs per case ({min(n, 5000)} for Huey), {repeats} repeats, systems interleaved per repeat."
    )
    print(body)
    if write:
        write_section("embedded", body, command)
    return results


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONHASHSEED", "0")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, 3, True, "make bench"))
