"""How much of the gap between rustqueue's SQLite claim+ack and the raw floor a different table layout
could close: three layouts, SQL only (no engine), batch-50 claim+ack, interleaved, median of the repeats.

* ``raw floor``: the embedded benchmark's floor (one narrow table, one partial claim index, no leases).
* ``rustqueue``: rustqueue's own schema and its own claim and ack statements, on a store the engine filled.
* ``split``: a layout that keeps the job row out of the claim: the wide row is written at push and at
  completion only, waiting jobs live in a narrow ``ready (queue, sort_key, job)`` table, leases in a narrow
  ``leases`` table with an expiry index, completed rows in a completion index (retention needs one).

Run on demand: ``python bench/sqlite_layouts.py [--repeats N] [--n N]``. Results and the command are in
``docs/decisions.md`` (SQLite: one job row).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from embedded import (
    _RAW_INSERT,
    _RAW_SCHEMA,
    QUEUE,
    AckFn,
    ClaimFn,
    _items,
    _raw_rows,
    claim_ack_all,
    marks,
    raw_ack,
    raw_claim,
    rustqueue_ack,
    rustqueue_claim,
)

BATCH = 50

_SPLIT_SCHEMA = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, custom_id TEXT, name TEXT NOT NULL, queue TEXT NOT NULL, data BLOB,
  result BLOB, state TEXT NOT NULL, progress INTEGER, logs BLOB, priority ANY, delay_until INTEGER,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER,
  max_attempts INTEGER NOT NULL, attempt INTEGER NOT NULL, backoff TEXT NOT NULL,
  backoff_delay_ms INTEGER NOT NULL, last_error TEXT, ttl_ms INTEGER, timeout_ms INTEGER, unique_key TEXT,
  tags TEXT, group_id TEXT, metadata BLOB, depends_on BLOB, flow_id TEXT, lifo INTEGER NOT NULL,
  remove_on_complete INTEGER NOT NULL, remove_on_fail INTEGER NOT NULL, sort_key BLOB NOT NULL);
CREATE INDEX jobs_completed ON jobs (completed_at) WHERE state = 'completed';
CREATE TABLE ready (queue TEXT NOT NULL, sort_key BLOB NOT NULL, job INTEGER NOT NULL,
  PRIMARY KEY (queue, sort_key)) WITHOUT ROWID;
CREATE TABLE leases (job INTEGER PRIMARY KEY, expires_at INTEGER NOT NULL, token TEXT NOT NULL, worker TEXT,
  deliveries INTEGER NOT NULL);
CREATE INDEX leases_expiry ON leases (expires_at);
"""
_SPLIT_INSERT = (
    "INSERT INTO jobs (id, name, queue, data, state, priority, created_at, updated_at, max_attempts, attempt, "
    "backoff, backoff_delay_ms, lifo, remove_on_complete, remove_on_fail, sort_key) "
    "VALUES (?, 'job', ?, ?, 'waiting', 0, ?, ?, 3, 0, 'exponential', 1000, 0, 0, 0, ?)"
)


def _connect(path: Path, schema: str | None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if schema:
        conn.executescript(schema)
    return conn


def _rate(conn: sqlite3.Connection, n: int, claim: ClaimFn, ack: AckFn) -> float:
    """Jobs/s of claiming and acking ``n`` jobs, batch by batch; closes ``conn``."""
    try:
        started = time.perf_counter()
        claim_ack_all(conn, n, BATCH, claim, ack)
        return n / (time.perf_counter() - started)
    finally:
        conn.close()


def raw_floor(n: int, workdir: Path) -> float:
    conn = _connect(workdir / f"raw-{uuid.uuid4().hex}.db", _RAW_SCHEMA)
    conn.execute("BEGIN")
    conn.executemany(_RAW_INSERT, _raw_rows(0, n))
    conn.execute("COMMIT")
    return _rate(conn, n, raw_claim, raw_ack)


def rustqueue_schema(n: int, workdir: Path) -> float:
    from rustqueue_core import RustQueue

    path = workdir / f"rq-{uuid.uuid4().hex}.db"

    async def fill() -> None:
        rq = await RustQueue.sqlite(str(path)).housekeeping(False).build()
        try:
            for start in range(0, n, 500):
                await rq.push_batch(QUEUE, _items(start, min(n, start + 500)))
        finally:
            await rq.close()

    asyncio.run(fill())
    return _rate(_connect(path, None), n, rustqueue_claim, rustqueue_ack)


def split_layout(n: int, workdir: Path) -> float:
    conn = _connect(workdir / f"split-{uuid.uuid4().hex}.db", _SPLIT_SCHEMA)
    now_us = time.time_ns() // 1_000
    conn.execute("BEGIN")
    for i in range(n):
        sort_key = b"\xff\x7f" + i.to_bytes(8, "big") + uuid.uuid4().bytes
        row = conn.execute(_SPLIT_INSERT, (str(uuid.uuid4()), QUEUE, b'{"i":%d}' % i, now_us, now_us, sort_key))
        conn.execute("INSERT INTO ready VALUES (?, ?, ?)", (QUEUE, sort_key, row.lastrowid))
    conn.execute("COMMIT")

    def claim(conn: sqlite3.Connection, batch: int) -> list[Any]:
        now = time.time_ns() // 1_000
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "DELETE FROM ready WHERE queue = ?1 AND sort_key IN "
            "(SELECT sort_key FROM ready WHERE queue = ?1 ORDER BY sort_key LIMIT ?2) RETURNING job",
            (QUEUE, batch),
        ).fetchall()
        conn.executemany(
            "INSERT INTO leases (job, expires_at, token, worker, deliveries) "
            "VALUES (?, ?, lower(hex(randomblob(16))), NULL, 1)",
            [(r[0], now + 30_000_000) for r in rows],
        )
        conn.execute("COMMIT")
        return [r[0] for r in rows]

    def ack(conn: sqlite3.Connection, ids: list[Any]) -> None:
        now = time.time_ns() // 1_000
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"DELETE FROM leases WHERE job IN ({marks(ids)})", ids)
        conn.execute(
            f"UPDATE jobs SET state = 'completed', completed_at = ?1, updated_at = ?1 WHERE rowid IN ({marks(ids)})",
            [now, *ids],
        )
        conn.execute("COMMIT")

    return _rate(conn, n, claim, ack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n", type=int, default=5_000)
    args = parser.parse_args()
    layouts = {"raw floor": raw_floor, "rustqueue": rustqueue_schema, "split": split_layout}
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    with tempfile.TemporaryDirectory(prefix="rq-layouts-") as tmp:
        for repeat in range(args.repeats):
            names = list(layouts)
            names = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in names:
                rates[name].append(layouts[name](args.n, Path(tmp)))
    floor = statistics.median(rates["raw floor"])
    print("| layout | claim+ack jobs/s (median) | range | vs raw floor |\n|---|---:|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {min(values):,.0f}–{max(values):,.0f} | {median / floor:.2f}× |")


if __name__ == "__main__":
    main()
