"""PostgreSQL benchmark: rustqueue's PostgreSQL backend (embedded, single-call and batch 50; one and two
``rustqueue serve`` nodes over TCP) against PgQueuer, procrastinate and a raw ``FOR UPDATE SKIP LOCKED``
claim+ack loop on asyncpg, in the same run; plus batch-50 claim+ack from an 8,000-job backlog (rustqueue
and the raw loop) and dequeue latency at 1,000 vs 1,000,000 waiting jobs.

Every system gets its own fresh schema (dropped at the end) in the same database, at the server's
settings (``synchronous_commit`` as reported below). Shapes:

* rustqueue embedded: ``push`` / ``push_batch``, ``claim`` + ``ack`` / ``ack_batch`` (as bench/embedded.py).
* raw floor: a minimal table (bigserial id, queue, state, json payload, partial index on waiting rows);
  claim = ``UPDATE … WHERE id IN (SELECT … ORDER BY id LIMIT k FOR UPDATE SKIP LOCKED) RETURNING``,
  ack = ``UPDATE … SET state = 'done' WHERE id = ANY(…)``, each its own autocommitted statement; its e2e
  runs a producer and a polling consumer on one connection each, like the queues' e2e runs. It is the
  ceiling of a SKIP LOCKED queue at this server's durability: its e2e ratio to the peers bounds any queue's.
* PgQueuer: its ``Queries`` API (what its worker loop calls): ``enqueue`` (lists for a batch),
  ``dequeue(batch_size)`` then ``log_jobs`` (the ack: moves the row to its log table).
* procrastinate: ``defer_async`` / ``batch_defer_async``; consumption is its worker
  (``run_worker_async``, concurrency 1 for single-call, 50 for "batch"; it fetches one job per query).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from common import (
    Case,
    Result,
    Target,
    merge,
    rate_of,
    ratio_target,
    render_table,
    render_targets,
    run_interleaved,
    timed,
    write_section,
    write_targets,
)
from embedded import rq_cases
from server import BATCH, Server, rustqueue_tcp_cases

DEFAULT_N = 2_000
DSN = "postgresql://postgres@127.0.0.1:5432/test"
#: The server nodes use the backend's default schema, in a database of their own.
NODES_DB = "rustqueue_bench"
NODES_DSN = f"postgresql://postgres@127.0.0.1:5432/{NODES_DB}"
LATENCY_SAMPLES = 200
#: Batch-50 claim+ack is also measured from a larger backlog (rustqueue embedded and the raw floor).
BACKLOG = 8_000
BACKLOG_CASE = f"consume batch50 ({BACKLOG:,} waiting)"


def _schema() -> str:
    return f"bench_{uuid.uuid4().hex[:12]}"


async def _drop_bench_schemas() -> None:
    conn = await asyncpg.connect(DSN)
    try:
        names = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_%'")
        for row in names:
            await conn.execute(f'DROP SCHEMA "{row[0]}" CASCADE')
    finally:
        await conn.close()


async def _fresh_nodes_database(*, create: bool = True) -> None:
    """An empty database for the server nodes (the URL of ``serve --storage`` carries no schema option)."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{NODES_DB}" WITH (FORCE)')
        if create:
            await conn.execute(f'CREATE DATABASE "{NODES_DB}"')
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- raw SKIP LOCKED floor

_RAW_DDL = """
CREATE TABLE jobs (id bigserial PRIMARY KEY, queue text NOT NULL, state text NOT NULL DEFAULT 'waiting',
  payload json NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz,
  completed_at timestamptz);
CREATE INDEX jobs_claim ON jobs (queue, id) WHERE state = 'waiting';
"""
_RAW_INSERT = "INSERT INTO jobs (queue, payload) SELECT 'bench', p FROM unnest($1::json[]) AS p"
_RAW_CLAIM = (
    "UPDATE jobs SET state = 'active', started_at = now() WHERE id IN (SELECT id FROM jobs WHERE queue = 'bench' "
    "AND state = 'waiting' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, payload"
)
_RAW_ACK = "UPDATE jobs SET state = 'done', completed_at = now() WHERE id = ANY($1::bigint[]) AND state = 'active'"


def _payloads(start: int, stop: int, pad: str = "") -> list[str]:
    if pad:
        return [f'{{"i":{i},"pad":"{pad}"}}' for i in range(start, stop)]
    return [f'{{"i":{i}}}' for i in range(start, stop)]


def raw_cases(n: int, *, pad: str = "", extra_ddl: str = "") -> dict[str, Case]:
    """The raw loop's cases; ``pad`` widens each payload, ``extra_ddl`` runs after the table is made
    (``bench/postgres_layouts.py`` uses both to give the loop rustqueue's row width and indexes)."""

    async def with_table(body: Callable[[asyncpg.Connection], Awaitable[None]], prefill: bool) -> float:
        schema = _schema()
        conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.execute(_RAW_DDL)
            if extra_ddl:
                await conn.execute(extra_ddl)
            if prefill:
                # No ANALYZE: statistics taken now say every row is waiting, so the planner reads the
                # primary key in id order and filters out the rows already claimed, rescanning them on
                # every claim (quadratic; at 8,000 jobs it halves the loop's rate). A live queue's
                # statistics show few waiting rows, and its claim index is used, as it is here.
                await conn.execute(_RAW_INSERT, _payloads(0, n, pad))
            return await timed(lambda: body(conn))
        finally:
            await conn.close()

    def produce(batch: int) -> Callable[[asyncpg.Connection], Awaitable[None]]:
        async def run(conn: asyncpg.Connection) -> None:
            for start in range(0, n, batch):
                await conn.execute(_RAW_INSERT, _payloads(start, start + batch))

        return run

    def claim_ack(batch: int) -> Callable[[asyncpg.Connection], Awaitable[None]]:
        async def run(conn: asyncpg.Connection) -> None:
            done = 0
            while done < n:
                rows = await conn.fetch(_RAW_CLAIM, batch)
                await conn.execute(_RAW_ACK, [r[0] for r in rows])
                done += len(rows)

        return run

    async def e2e(batch: int) -> float:
        # The same shape as the queues' e2e runs: a producer and a consumer, one connection each;
        # the consumer polls (1 ms pause when it finds nothing).
        schema = _schema()
        conns = [await asyncpg.connect(DSN, server_settings={"search_path": schema}) for _ in range(2)]
        try:
            await conns[0].execute(f'CREATE SCHEMA "{schema}"')
            await conns[0].execute(_RAW_DDL)
            producer, consumer = conns

            async def consume() -> None:
                done = 0
                while done < n:
                    rows = await consumer.fetch(_RAW_CLAIM, batch)
                    if not rows:
                        await asyncio.sleep(0.001)
                        continue
                    await consumer.execute(_RAW_ACK, [r[0] for r in rows])
                    done += len(rows)

            async def run() -> None:
                await asyncio.gather(produce(batch)(producer), consume())

            return await timed(run)
        finally:
            for conn in conns:
                await conn.close()

    return {
        "produce single": lambda: with_table(produce(1), False),
        "produce batch50": lambda: with_table(produce(BATCH), False),
        "consume single": lambda: with_table(claim_ack(1), True),
        "consume batch50": lambda: with_table(claim_ack(BATCH), True),
        "e2e single": lambda: e2e(1),
        "e2e batch50": lambda: e2e(BATCH),
    }


# ----------------------------------------------------------------------------- PgQueuer


def pgqueuer_cases(n: int) -> dict[str, Case]:
    from pgqueuer.ports.repository import EntrypointExecutionParameter
    from pgqueuer.queries import Queries

    entrypoints = {"job": EntrypointExecutionParameter(concurrency_limit=0)}
    manager_id: Any = uuid.uuid4()

    async def produce_into(queries: Any, batch: int) -> None:
        for start in range(0, n, batch):
            if batch == 1:
                await queries.enqueue("job", f'{{"i":{start}}}'.encode())
            else:
                count = min(batch, n - start)
                payloads: list[bytes | None] = [p.encode() for p in _payloads(start, start + count)]
                await queries.enqueue(["job"] * count, payloads, [0] * count)

    async def consume_from(queries: Any, batch: int, until: int) -> None:
        done = 0
        while done < until:
            jobs = await queries.dequeue(batch, entrypoints, manager_id, None, _heartbeat_timeout())
            if not jobs:
                await asyncio.sleep(0.001)
                continue
            await queries.log_jobs([(job, "successful", None) for job in jobs])
            done += len(jobs)

    async def with_queries(body: Callable[[Any], Awaitable[None]], prefill: bool) -> float:
        schema = _schema()
        conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            queries = Queries.from_asyncpg_connection(conn)
            await queries.install(create_schema=False)
            if prefill:
                for start in range(0, n, 500):
                    count = min(500, n - start)
                    payloads: list[bytes | None] = [p.encode() for p in _payloads(start, start + count)]
                    await queries.enqueue(["job"] * count, payloads, [0] * count)
            return await timed(lambda: body(queries))
        finally:
            await conn.close()

    async def e2e(batch: int) -> float:
        # asyncpg runs one query at a time per connection: producer and consumer get one each.
        schema = _schema()
        conns = [await asyncpg.connect(DSN, server_settings={"search_path": schema}) for _ in range(2)]
        try:
            await conns[0].execute(f'CREATE SCHEMA "{schema}"')
            producer, consumer = (Queries.from_asyncpg_connection(c) for c in conns)
            await producer.install(create_schema=False)

            async def run() -> None:
                await asyncio.gather(produce_into(producer, batch), consume_from(consumer, batch, n))

            return await timed(run)
        finally:
            for conn in conns:
                await conn.close()

    return {
        "produce single": lambda: with_queries(lambda q: produce_into(q, 1), False),
        "produce batch50": lambda: with_queries(lambda q: produce_into(q, BATCH), False),
        "consume single": lambda: with_queries(lambda q: consume_from(q, 1, n), True),
        "consume batch50": lambda: with_queries(lambda q: consume_from(q, BATCH, n), True),
        "e2e single": lambda: e2e(1),
        "e2e batch50": lambda: e2e(BATCH),
    }


def _heartbeat_timeout() -> Any:
    from datetime import timedelta

    return timedelta(seconds=30)


# ----------------------------------------------------------------------------- procrastinate


def _task_kwargs(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"i": i} for i in range(start, stop)]


def procrastinate_cases(n: int) -> dict[str, Case]:
    import procrastinate

    async def with_app(body: Callable[[Any, Any, list[int]], Awaitable[None]], prefill: bool) -> float:
        schema = _schema()
        conn = await asyncpg.connect(DSN)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()
        connector = procrastinate.PsycopgConnector(conninfo=f"{DSN}?options=-csearch_path%3D{schema}")
        app = procrastinate.App(connector=connector)
        handled = [0]

        @app.task(name="job", queue="bench")  # type: ignore[misc]
        async def job(i: int) -> None:
            handled[0] += 1

        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            if prefill:
                for start in range(0, n, 500):
                    await job.batch_defer_async(*_task_kwargs(start, min(n, start + 500)))
            return await timed(lambda: body(app, job, handled))

    def produce(batch: int) -> Callable[[Any, Any, list[int]], Awaitable[None]]:
        async def run(app: Any, job: Any, handled: list[int]) -> None:
            for start in range(0, n, batch):
                if batch == 1:
                    await job.defer_async(i=start)
                else:
                    await job.batch_defer_async(*_task_kwargs(start, min(n, start + batch)))

        return run

    def consume(concurrency: int) -> Callable[[Any, Any, list[int]], Awaitable[None]]:
        async def run(app: Any, job: Any, handled: list[int]) -> None:
            await app.run_worker_async(
                queues=["bench"], wait=False, concurrency=concurrency, install_signal_handlers=False
            )

        return run

    def e2e(batch: int) -> Callable[[Any, Any, list[int]], Awaitable[None]]:
        async def run(app: Any, job: Any, handled: list[int]) -> None:
            worker = asyncio.ensure_future(
                app.run_worker_async(queues=["bench"], concurrency=batch, install_signal_handlers=False)
            )
            try:
                await produce(batch)(app, job, handled)
                while handled[0] < n:
                    if worker.done():
                        worker.result()
                        raise RuntimeError("procrastinate worker stopped early")
                    await asyncio.sleep(0.001)
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)

        return run

    return {
        "produce single": lambda: with_app(produce(1), False),
        "produce batch50": lambda: with_app(produce(BATCH), False),
        "consume single": lambda: with_app(consume(1), True),
        "consume batch50": lambda: with_app(consume(BATCH), True),
        "e2e single": lambda: with_app(e2e(1), False),
        "e2e batch50": lambda: with_app(e2e(BATCH), False),
    }


# ----------------------------------------------------------------------------- dequeue latency


async def dequeue_latency(waiting: int) -> float:
    """Median seconds of ``claim(queue, 1)`` with ``waiting`` jobs ready, bulk-loaded by SQL from one
    template row pushed through the engine (so every column is what the engine itself writes)."""
    from rustqueue_postgres.schema import JOB_COLUMNS

    from rustqueue_core import RustQueue

    schema = _schema()
    rq: Any = await RustQueue.open(DSN).storage_options(schema=schema).housekeeping(False).build()
    conn = await asyncpg.connect(DSN)
    try:
        template = await rq.push("bench", "job", {"i": 0})
        columns = ", ".join(JOB_COLUMNS)
        values = ", ".join(
            "gen_random_uuid()::text" if c == "id" else "t.sort_key || int8send(g)" if c == "sort_key" else f"t.{c}"
            for c in JOB_COLUMNS
        )
        await conn.execute(
            f'INSERT INTO "{schema}".jobs ({columns}) SELECT {values} FROM "{schema}".jobs t, '
            f"generate_series(1, $1) g WHERE t.id = $2",
            waiting - 1,
            template,
        )
        await conn.execute(f'VACUUM ANALYZE "{schema}".jobs')
        samples: list[float] = []
        for _ in range(LATENCY_SAMPLES):
            started = time.perf_counter()
            jobs = await rq.claim("bench", 1)
            samples.append(time.perf_counter() - started)
            assert len(jobs) == 1
        return statistics.median(samples)
    finally:
        await rq.close()
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


# ----------------------------------------------------------------------------- driver


async def server_settings() -> str:
    conn = await asyncpg.connect(DSN)
    try:
        version = await conn.fetchval("SHOW server_version")
        sync = await conn.fetchval("SHOW synchronous_commit")
        fsync = await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    return f"PostgreSQL {version}, synchronous_commit={sync}, fsync={fsync}"


async def run(n: int, repeats: int, write: bool, command: str) -> list[Result]:
    await _drop_bench_schemas()
    merged: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory(prefix="rq-bench-pg-") as tmp:
        workdir = Path(tmp)
        for _ in range(repeats):
            await _fresh_nodes_database()
            nodes = [Server(NODES_DSN, ["tcp"], workdir) for _ in range(2)]
            try:
                for node in nodes:  # one after the other: the first applies the migrations
                    await node.start()
                embedded = rq_cases(DSN, n, workdir)
                embedded[BACKLOG_CASE] = rq_cases(DSN, BACKLOG, workdir)["consume batch50"]
                raw = raw_cases(n)
                raw[BACKLOG_CASE] = raw_cases(BACKLOG)["consume batch50"]
                systems: list[tuple[str, dict[str, Case]]] = [
                    ("rustqueue embedded", embedded),
                    ("rustqueue tcp, 1 node", rustqueue_tcp_cases(nodes[0], n, BATCH)),
                    ("rustqueue tcp, 2 nodes", rustqueue_tcp_cases(nodes, n, BATCH)),
                    ("raw SKIP LOCKED floor", raw),
                    ("pgqueuer", pgqueuer_cases(n)),
                    ("procrastinate", procrastinate_cases(n)),
                ]
                systems[0][1].pop("100 concurrent single pushes", None)
                ops = {"default": n, BACKLOG_CASE: BACKLOG}
                merge(merged, await run_interleaved("postgres", systems, ops, 1))
            finally:
                for node in nodes:
                    node.stop()
            await _drop_bench_schemas()
        await _fresh_nodes_database(create=False)
    latency = {waiting: await dequeue_latency(waiting) for waiting in (1_000, 1_000_000)}
    results = list(merged.values())
    peers = ("pgqueuer", "procrastinate")
    ratios: dict[str, tuple[str, str]] = {}
    targets: list[Target] = []
    for r in results:
        if (r.system.startswith("rustqueue") or r.system == "raw SKIP LOCKED floor") and r.case.startswith("e2e"):
            rates = {p: x.rate for p in peers for x in results if x.system == p and x.case == r.case}
            if rates:
                best = max(rates, key=lambda p: rates[p])
                ratios[f"postgres/{r.case}/{r.system}"] = (f"postgres/{r.case}/{best}", best)
        if r.system == "rustqueue embedded" and r.case.startswith("consume"):
            ratios[f"postgres/{r.case}/{r.system}"] = (f"postgres/{r.case}/raw SKIP LOCKED floor", "raw floor")
    for case in ("e2e single", "e2e batch50"):
        candidates = [r for r in results if r.case == case and r.system in peers]
        if candidates:
            best = max(candidates, key=lambda r: r.rate).system
            for system in ("rustqueue embedded", "rustqueue tcp, 1 node", "rustqueue tcp, 2 nodes"):
                if rate_of(results, case, system) is None:
                    continue
                targets.append(ratio_target(f"{case}, {system} ≥ 3× the better of PgQueuer and procrastinate",
                                            results, case, system, best, 3.0))  # fmt: skip
    targets.append(ratio_target("embedded batch-50 claim+ack ≥ 70% of raw SKIP LOCKED", results, "consume batch50",
                                "rustqueue embedded", "raw SKIP LOCKED floor", 0.7))  # fmt: skip
    slow = latency[1_000_000] / latency[1_000]
    measured = f"{slow:.2f}× ({latency[1_000_000] * 1e3:.2f} vs {latency[1_000] * 1e3:.2f} ms)"
    targets.append(Target("dequeue latency at 1,000,000 waiting ≤ 1.5× at 1,000", measured, slow <= 1.5))
    body = (
        f"{render_table(results, ratios)}\n\n"
        f"Dequeue latency (embedded `claim(queue, 1)`, median of {LATENCY_SAMPLES}): "
        f"{latency[1_000] * 1e3:.2f} ms with 1,000 jobs waiting, {latency[1_000_000] * 1e3:.2f} ms with 1,000,000.\n\n"
        f"n = {n:,} jobs per case for every system ({BACKLOG:,} in the backlog case), {repeats} repeats, systems "
        "interleaved per case; "
        f"{await server_settings()}; every system at its defaults in a fresh schema. TCP nodes: `rustqueue serve "
        f"--plugins=tcp` sharing one database, 4 concurrent batches spread over the nodes. procrastinate consumes "
        f'through its worker (one job per fetch; "batch50" = worker concurrency 50); PgQueuer through '
        f"`Queries.dequeue` + `log_jobs`. The raw floor's e2e ratio to the better peer is the ceiling of any "
        f"queue doing durable SKIP LOCKED claims and acks on this server. The raw floor's consume runs start "
        f"unanalyzed: statistics taken right after its bulk insert say every row is waiting, and the planner "
        f"then reads the primary key and filters out the claimed rows on every claim (quadratic; it halved the "
        f"loop's rate at {BACKLOG:,} jobs). A live queue's statistics show few waiting rows and its claim index "
        f"is used, as it is here.\n\n"
        f"Targets:\n\n{render_targets(targets)}"
    )
    print(body)
    if write:
        write_section("postgres", body, command)
        write_targets("postgres", targets, command)
    return results
