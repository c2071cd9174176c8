"""How much of the gap between rustqueue's PostgreSQL batch-50 claim+ack and a raw ``SKIP LOCKED`` loop
is its table layout: three layouts, SQL only (no engine), interleaved, median of the repeats.

* ``raw floor``: the PostgreSQL benchmark's floor (bigserial id, a narrow row, one partial claim index).
* ``raw, wide rows``: the same loop with each payload padded so rows are as wide as rustqueue's (~250 bytes).
* ``raw, wide rows, rustqueue's indexes``: and with rustqueue's active and finished-state indexes, so a claim
  and an ack each write one secondary index entry as rustqueue's do (what is left is its statements).
* ``rustqueue``: rustqueue's own schema, filled by the engine, and its own claim and ack statements
  (``Statements.claim_for`` and ``complete_plain``), run directly on one connection.
* ``rustqueue, raw statements``: rustqueue's schema and rows, claimed and acknowledged by the raw loop's two
  statements (no lease token, rev check, delayed branch or children probe): what a leaner statement could win.
* ``split``: a narrow ``hot`` table holding only what a claim or an ack reads or writes (state, sort key,
  lease, timestamps, rev) with the same three state indexes, beside a ``cold`` table holding the payload
  and options, written at push only. Every read of a whole job would join the two.

Run on demand: ``python bench/postgres_layouts.py [--repeats N] [--n N]``. Results and the command are in
``docs/decisions.md`` (PostgreSQL: one secondary index entry per claim and per ack).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from postgres import DSN, _drop_bench_schemas, _schema, raw_cases

from rustqueue_core import RustQueue

BATCH = 50

_SPLIT_DDL = """
CREATE TABLE hot (id text COLLATE "C" PRIMARY KEY, queue text COLLATE "C" NOT NULL, state text NOT NULL,
  sort_key bytea NOT NULL, group_id text, worker_id text, lease_token text, lease_expires_at timestamptz,
  lease_ms bigint, deadline_at timestamptz, started_at timestamptz, completed_at timestamptz,
  updated_at timestamptz NOT NULL, deliveries integer NOT NULL DEFAULT 0, rev bigint NOT NULL DEFAULT 0,
  writer bigint, expires_at timestamptz, delay_until timestamptz, timeout_ms bigint
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 1);
CREATE INDEX hot_claim ON hot (queue, sort_key) WHERE state = 'waiting';
CREATE INDEX hot_active ON hot (queue, group_id) WHERE state = 'active';
CREATE INDEX hot_rest ON hot (queue, state, completed_at) WHERE state NOT IN ('waiting', 'active');
CREATE TABLE cold (id text COLLATE "C" PRIMARY KEY, name text NOT NULL, data json, result json,
  logs json NOT NULL, priority json NOT NULL, created_at timestamptz NOT NULL, max_attempts integer NOT NULL,
  attempt integer NOT NULL, backoff text NOT NULL, backoff_delay_ms bigint NOT NULL, tags text[] NOT NULL,
  depends_on text[] NOT NULL, lifo boolean NOT NULL, remove_on_complete boolean NOT NULL,
  remove_on_fail boolean NOT NULL);
"""
_SPLIT_FILL_HOT = (
    "INSERT INTO hot (id, queue, state, sort_key, updated_at, writer) "
    "SELECT i, 'bench', 'waiting', decode(md5(i), 'hex'), $2, 7 FROM unnest($1::text[]) AS i"
)
_SPLIT_FILL_COLD = (
    "INSERT INTO cold (id, name, data, logs, priority, created_at, max_attempts, attempt, backoff, "
    "backoff_delay_ms, tags, depends_on, lifo, remove_on_complete, remove_on_fail) "
    "SELECT i, 'job', '{\"i\":1}', '[]', '0', $2, 3, 0, 'fixed', 1000, '{}', '{}', false, false, false "
    "FROM unnest($1::text[]) AS i"
)
# The same shape as rustqueue's claim: lock in claim order, rank, update by ctid, one lease token each.
_SPLIT_CLAIM = f"""
WITH picked AS (SELECT c.id, c.ctid, row_number() OVER (ORDER BY c.sort_key) AS rn FROM (
    SELECT j.id, j.ctid, j.sort_key FROM hot j WHERE j.queue = 'bench' AND j.state = 'waiting'
    AND (j.expires_at IS NULL OR j.expires_at > $1) ORDER BY j.sort_key LIMIT {BATCH} FOR UPDATE SKIP LOCKED
  ) c ORDER BY c.sort_key),
upd AS (UPDATE hot j SET state = 'active', started_at = $1, updated_at = $1, deliveries = j.deliveries + 1,
  rev = j.rev + 1, writer = 7, worker_id = NULL,
  lease_token = encode(substring($2::bytea,
    array_position((SELECT array_agg(r.id ORDER BY r.rn) FROM picked r), j.id) * 16 - 15, 16), 'hex'),
  lease_ms = 30000, lease_expires_at = $1 + interval '30 s',
  deadline_at = CASE WHEN j.timeout_ms > 0 THEN $1 + j.timeout_ms * interval '1 millisecond' END,
  delay_until = NULL
  WHERE j.ctid = ANY(ARRAY(SELECT t.ctid FROM picked t)) RETURNING j.id, j.rev)
SELECT p.rn, u.id, u.rev FROM upd u JOIN picked p ON p.id = u.id
"""
_SPLIT_ACK = """
UPDATE hot j SET state = 'completed', completed_at = $3, updated_at = $3, lease_token = NULL,
  lease_expires_at = NULL, lease_ms = NULL, deadline_at = NULL, rev = j.rev + 1, writer = NULL
FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS i(id, expect, n)
WHERE j.id = i.id AND j.state = 'active'
RETURNING (i.n - 1)::int, CASE WHEN j.rev = i.expect THEN NULL ELSE j.id END
"""

Claim = Callable[[datetime], Awaitable[list[asyncpg.Record]]]
Ack = Callable[[list[asyncpg.Record], datetime], Awaitable[object]]


async def _claim_ack_all(n: int, claim: Claim, ack: Ack) -> float:
    """Jobs/s of claiming and acknowledging ``n`` jobs in batches (rows: rank, id, rev, …)."""
    started = time.perf_counter()
    done = 0
    while done < n:
        now = datetime.now(UTC)
        rows = await claim(now)
        await ack(rows, now)
        done += len(rows)
    return n / (time.perf_counter() - started)


async def raw_floor(n: int) -> float:
    return n / await raw_cases(n)["consume batch50"]()


#: The indexes beside the claim index that give the raw loop rustqueue's index writes (migration 4).
_RUSTQUEUE_INDEXES = (
    "CREATE INDEX jobs_active ON jobs (queue) WHERE state = 'active'; "
    "CREATE INDEX jobs_rest ON jobs (queue, state, completed_at) WHERE state NOT IN ('waiting', 'active')"
)
#: Padding that makes the raw loop's rows about as wide as rustqueue's (``pg_column_size`` ~250 bytes).
_PAD = "x" * 170


async def raw_variant(n: int, *, indexes: bool) -> float:
    extra_ddl = _RUSTQUEUE_INDEXES if indexes else ""
    return n / await raw_cases(n, pad=_PAD, extra_ddl=extra_ddl)["consume batch50"]()


#: The raw loop's statements on rustqueue's table (claim order by sort_key).
_LEAN_CLAIM = (
    f"UPDATE jobs SET state = 'active', started_at = $1, rev = rev + 1 WHERE id IN (SELECT id FROM jobs "
    f"WHERE queue = 'bench' AND state = 'waiting' ORDER BY sort_key LIMIT {BATCH} FOR UPDATE SKIP LOCKED) "
    "RETURNING 0, id"
)
_LEAN_ACK = "UPDATE jobs SET state = 'completed', completed_at = $2 WHERE id = ANY($1::text[]) AND state = 'active'"


async def rustqueue_schema(n: int, *, lean: bool = False) -> float:
    schema = _schema()
    rq = await RustQueue.open(DSN).storage_options(schema=schema, notify="off").housekeeping(False).build()
    try:
        for start in range(0, n, 500):
            await rq.push_batch("bench", [{"name": "job", "data": {"i": i}} for i in range(start, min(n, start + 500))])
        storage = rq.storage
        writer = storage._writer  # the rows are the engine's: claims skip the whole-row JSON, as it would
        claim_sql, ack_sql = storage.sql.claim_for(BATCH), storage.sql.complete_plain
        conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
        try:
            if lean:

                async def lean_claim(now: datetime) -> list[asyncpg.Record]:
                    return await conn.fetch(_LEAN_CLAIM, now)

                async def lean_ack(rows: list[asyncpg.Record], now: datetime) -> object:
                    return await conn.execute(_LEAN_ACK, [r[1] for r in rows], now)

                return await _claim_ack_all(n, lean_claim, lean_ack)

            async def claim(now: datetime) -> list[asyncpg.Record]:
                tokens = secrets.token_bytes(16 * BATCH)
                return await conn.fetch(claim_sql, "bench", now, None, tokens, 30_000, writer)

            async def ack(rows: list[asyncpg.Record], now: datetime) -> object:
                return await conn.fetch(ack_sql, [r[1] for r in rows], [r[2] + 1 for r in rows], now)

            return await _claim_ack_all(n, claim, ack)
        finally:
            await conn.close()
    finally:
        await rq.close()
        await _drop(schema)


async def split_layout(n: int) -> float:
    schema = _schema()
    conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(_SPLIT_DDL)
        now = datetime.now(UTC)
        for start in range(0, n, 500):
            ids = [str(uuid.uuid4()) for _ in range(start, min(n, start + 500))]
            await conn.execute(_SPLIT_FILL_HOT, ids, now)
            await conn.execute(_SPLIT_FILL_COLD, ids, now)

        async def claim(now: datetime) -> list[asyncpg.Record]:
            return await conn.fetch(_SPLIT_CLAIM, now, secrets.token_bytes(16 * BATCH))

        async def ack(rows: list[asyncpg.Record], now: datetime) -> object:
            return await conn.fetch(_SPLIT_ACK, [r[1] for r in rows], [r[2] + 1 for r in rows], now)

        return await _claim_ack_all(n, claim, ack)
    finally:
        await conn.close()
        await _drop(schema)


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def run(n: int, repeats: int) -> None:
    layouts: dict[str, Callable[[int], Awaitable[float]]] = {
        "raw floor": raw_floor,
        "raw, wide rows": lambda n: raw_variant(n, indexes=False),
        "raw, wide rows, rustqueue's indexes": lambda n: raw_variant(n, indexes=True),
        "rustqueue": rustqueue_schema,
        "rustqueue, raw statements": lambda n: rustqueue_schema(n, lean=True),
        "split": split_layout,
    }
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    for repeat in range(repeats):
        names = list(layouts)
        names = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in names:
            rates[name].append(await layouts[name](n))
    await _drop_bench_schemas()
    floor = rates["raw floor"]
    print("| layout | claim+ack jobs/s (median) | range | vs raw floor | per repeat (median) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        paired = statistics.median(v / f for v, f in zip(values, floor, strict=True))
        print(
            f"| {name} | {median:,.0f} | {min(values):,.0f}–{max(values):,.0f} | "
            f"{median / statistics.median(floor):.2f}× | {paired:.2f}× |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n", type=int, default=2_000, help="jobs per run (the PostgreSQL benchmark's default)")
    args = parser.parse_args()
    asyncio.run(run(args.n, args.repeats))


if __name__ == "__main__":
    main()
