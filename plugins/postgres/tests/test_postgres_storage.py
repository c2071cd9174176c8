"""Behaviour specific to the PostgreSQL backend: schema and migrations, open errors, group limits,
wake-ups, connection loss, leader election and the URL options."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from rustqueue_postgres.connection import StorageUnavailable, describe_open_error
from rustqueue_postgres.filters import build_filter
from rustqueue_postgres.options import parse_url
from rustqueue_postgres.schema import LATEST_VERSION, SchemaTooNew
from rustqueue_postgres.storage import PostgresStorage

from rustqueue_core.errors import ConfigError
from rustqueue_core.ids import new_ids
from rustqueue_core.models import Job, LogEntry
from rustqueue_core.sortkey import sort_key, timestamp_us
from rustqueue_core.storage import OK, Change, CompleteItem, InsertConflict, JobFilter

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(queue: str = "q", *, at: datetime = NOW, priority: int = 0, **fields: Any) -> Job:
    ((job_id, raw),) = new_ids(1)
    key = sort_key("max_first", priority, False, timestamp_us(at), raw)
    return Job(
        id=job_id,
        name="task",
        queue=queue,
        created_at=at,
        updated_at=at,
        priority=priority,
        sort_key=key,
        **fields,
    )


async def admin_connection(url: str) -> Any:
    return await asyncpg.connect(url.split("?", 1)[0])


# ---------------------------------------------------------------- schema and migrations


async def test_every_field_round_trips_exactly(pg_storage: PostgresStorage) -> None:
    job = make_job(
        data={"z": 1, "a": [1.5, None, "é"]},  # key order and float text kept (json, not jsonb)
        priority=2**63 - 1,
        logs=[LogEntry(timestamp=NOW, message="queued")],
        tags=["a", "b"],
        depends_on=[],
        metadata={"k": {"nested": True}},
        unique_key="u1",
        group_id="g",
        flow_id="f",
        custom_id="c",
        ttl_ms=5000,
        expires_at=NOW + timedelta(seconds=5),
        delay_until=NOW + timedelta(seconds=1),
        state="delayed",
    )
    await pg_storage.insert_jobs([job], NOW)
    assert await pg_storage.get_jobs([job.id, "missing"]) == [job, None]


async def test_explicit_null_data_stays_null(pg_storage: PostgresStorage) -> None:
    job = make_job(data=None)
    await pg_storage.insert_jobs([job], NOW)
    (stored,) = await pg_storage.get_jobs([job.id])
    assert stored is not None and stored.data is None


async def test_open_is_idempotent_and_concurrent_opens_migrate_once(pg_url: str) -> None:
    storages = [PostgresStorage(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in storages))
    await storages[0].open()
    conn = await admin_connection(pg_url)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{storages[0].schema}".migrations')
    finally:
        await conn.close()
    assert [r[0] for r in rows] == list(range(1, LATEST_VERSION + 1))
    for storage in storages:
        await storage.close()
        await storage.close()


async def test_a_populated_version_3_schema_is_upgraded_in_place(pg_url: str, pg_schema: str) -> None:
    storage = PostgresStorage(pg_url)
    await storage.open()
    await storage.insert_jobs([make_job(at=NOW + timedelta(microseconds=i)) for i in range(30)], NOW)
    claimed = await storage.claim("q", 20, NOW, consumer_id=None, lease_ms=30_000)
    await storage.complete([CompleteItem(id=j.id) for j in claimed[:10]], NOW)
    await storage.close()
    s = f'"{pg_schema}"'
    conn = await admin_connection(pg_url)
    try:  # back to version 3's indexes
        await conn.execute(f"DROP INDEX {s}.jobs_queue_state")
        await conn.execute(f"CREATE INDEX jobs_queue_state ON {s}.jobs (queue, state) WHERE state <> 'waiting'")
        await conn.execute(f"CREATE INDEX jobs_completed ON {s}.jobs (completed_at) WHERE state = 'completed'")
        await conn.execute(f"DELETE FROM {s}.migrations WHERE version > 3")
    finally:
        await conn.close()
    upgraded = PostgresStorage(pg_url)
    await upgraded.open()
    try:
        counts = (await upgraded.count_jobs())["q"]
        assert (counts.waiting, counts.active, counts.completed) == (10, 10, 10)
        assert len(await upgraded.claim("q", 50, NOW, consumer_id=None, lease_ms=30_000)) == 10
    finally:
        await upgraded.close()
    conn = await admin_connection(pg_url)
    try:
        versions = [r[0] for r in await conn.fetch(f"SELECT version FROM {s}.migrations ORDER BY 1")]
        names = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", pg_schema)}
        definition = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'jobs_queue_state'", pg_schema
        )
    finally:
        await conn.close()
    assert versions == list(range(1, LATEST_VERSION + 1))
    assert "jobs_completed" not in names and "(queue, state, completed_at)" in definition


async def test_schema_from_a_newer_release_is_refused(pg_url: str, pg_schema: str) -> None:
    storage = PostgresStorage(pg_url)
    await storage.open()
    await storage.close()
    conn = await admin_connection(pg_url)
    try:
        await conn.execute(
            f'INSERT INTO "{pg_schema}".migrations (version, description) VALUES ($1, $2)',
            LATEST_VERSION + 1,
            "from the future",
        )
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew, match=f"version {LATEST_VERSION + 1}"):
        await PostgresStorage(pg_url).open()


async def test_claim_index_is_partial_on_waiting(pg_storage: PostgresStorage, pg_url: str) -> None:
    conn = await admin_connection(pg_url)
    try:
        definition = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'jobs_claim'",
            pg_storage.schema,
        )
    finally:
        await conn.close()
    assert "(queue, sort_key)" in definition and "WHERE (state = 'waiting'::text)" in definition


async def test_each_state_set_has_one_index_and_counts_and_names_read_all_three(
    pg_storage: PostgresStorage, pg_url: str
) -> None:
    """Waiting rows are only in the claim index (a claim planned on lagging statistics cannot take
    another index and sort the whole backlog), active rows only in the active index, the others in
    (queue, state, completed_at): counts and queue names still see every row."""
    await pg_storage.insert_jobs([make_job(at=NOW + timedelta(microseconds=i)) for i in range(3_000)], NOW)
    await pg_storage.insert_jobs([make_job("done-only"), make_job("active-only")], NOW)
    (claimed_one,) = await pg_storage.claim("done-only", 1, NOW, consumer_id=None, lease_ms=30_000)
    await pg_storage.complete([CompleteItem(id=claimed_one.id)], NOW)
    assert await pg_storage.claim("active-only", 1, NOW, consumer_id=None, lease_ms=30_000)
    conn = await admin_connection(pg_url)
    try:
        definitions = dict(
            await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'jobs'",
                pg_storage.schema,
            )
        )
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                f'EXPLAIN SELECT j.id FROM "{pg_storage.schema}".jobs j WHERE j.queue = $1 '
                "AND j.state = 'waiting' AND (j.expires_at IS NULL OR j.expires_at > $2) "
                "ORDER BY j.sort_key LIMIT 50 FOR UPDATE SKIP LOCKED",
                "q",
                NOW,
            )
        )
    finally:
        await conn.close()
    assert "jobs_completed" not in definitions
    finished = definitions["jobs_queue_state"]
    assert "(queue, state, completed_at)" in finished, finished
    assert "WHERE (state <> ALL (ARRAY['waiting'::text, 'active'::text]))" in finished, finished
    assert "WHERE (state = 'active'::text)" in definitions["jobs_active"]
    assert "jobs_claim" in plan and "Sort" not in plan, plan
    assert await pg_storage.queue_names() == ["active-only", "done-only", "q"]
    counts = await pg_storage.count_jobs()
    assert counts["q"].waiting == 3_000 and counts["done-only"].completed == 1
    assert counts["done-only"].waiting == 0 and counts["active-only"].active == 1
    assert counts["active-only"].completed == 0
    some = await pg_storage.count_jobs(["q", "active-only"])
    assert some["q"].waiting == 3_000 and some["active-only"].active == 1 and "done-only" not in some
    claimed = await pg_storage.claim("q", 50, NOW, consumer_id=None, lease_ms=30_000)
    assert [j.created_at for j in claimed] == [NOW + timedelta(microseconds=i) for i in range(50)]


async def test_completed_retention_reads_one_index_range_per_queue(pg_storage: PostgresStorage, pg_url: str) -> None:
    """ "Completed before T" with no queue lists the queues holding completed jobs and reads the
    (queue, state, completed_at) index per queue; it deletes exactly the old jobs of every queue."""
    old, recent = NOW - timedelta(hours=2), NOW
    jobs = [make_job(f"q{i % 3}", at=NOW + timedelta(microseconds=i)) for i in range(6_000)]
    await pg_storage.insert_jobs(jobs, NOW)
    for queue in ("q0", "q1", "q2"):
        claimed = await pg_storage.claim(queue, 2_000, NOW, consumer_id=None, lease_ms=30_000)
        await pg_storage.complete([CompleteItem(id=j.id) for j in claimed[:20]], old)
        await pg_storage.complete([CompleteItem(id=j.id) for j in claimed[20:]], recent)
    await pg_storage.insert_jobs([make_job("q3")], NOW)  # a queue with nothing completed
    retention = JobFilter(states=["completed"], completed_before=NOW - timedelta(hours=1))
    query = build_filter(pg_storage.sql.jobs, retention, None, 100, select=True)
    conn = await admin_connection(pg_url)
    try:
        await conn.execute(f'ANALYZE "{pg_storage.schema}".jobs')
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {query.sql}", *query.args))
    finally:
        await conn.close()
    ranges = [line for line in plan.splitlines() if "Index Cond: ((queue = ANY" in line and "completed_at <" in line]
    assert ranges and "Seq Scan" not in plan, plan
    deleted = await pg_storage.delete_jobs(filter=retention, limit=1_000)
    assert sorted(j.queue for j in deleted) == ["q0"] * 20 + ["q1"] * 20 + ["q2"] * 20
    assert all(j.completed_at == old for j in deleted)
    counts = await pg_storage.count_jobs()
    assert [counts[q].completed for q in ("q0", "q1", "q2")] == [1_980, 1_980, 1_980]
    assert counts["q3"].waiting == 1


async def test_batch_claims_reuse_a_cached_plan_that_reads_rows_by_tid(
    pg_storage: PostgresStorage, pg_url: str
) -> None:
    """A batch claim is planned once per connection (its limit is a literal), and that cached plan
    reaches the locked rows by TID rather than hashing a scan of the table, with fresh statistics
    too; the claims still come back in order."""
    await pg_storage.insert_jobs([make_job(at=NOW + timedelta(microseconds=i)) for i in range(2_000)], NOW)
    claimed: list[Job] = []
    for _ in range(12):
        claimed += await pg_storage.claim("q", 50, NOW, consumer_id=None, lease_ms=30_000)
    assert [j.created_at for j in claimed] == [NOW + timedelta(microseconds=i) for i in range(600)]
    statement = pg_storage.sql.claim_for(50)
    conn = await admin_connection(pg_url)
    try:
        await conn.execute(f'ANALYZE "{pg_storage.schema}".jobs')
        async with conn.transaction():
            for _ in range(7):
                await conn.fetch(statement, "q", NOW, None, b"\0" * 800, 30_000, None)
            custom, generic = await conn.fetchrow(
                "SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = $1", statement
            )
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE probe (text, timestamptz, text, bytea, bigint, bigint) AS {statement}")
            plan = "\n".join(
                row[0] for row in await conn.fetch("EXPLAIN EXECUTE probe('q', now(), NULL, '', 30000, NULL)")
            )
    finally:
        await conn.close()
    # The server plans the first five executions; after them every one uses the cached generic plan.
    assert (custom, generic) == (5, 2)
    assert "Tid Scan" in plan and "Seq Scan" not in plan, plan


def test_claim_statements_inline_the_batch_size_and_renumber_later_parameters() -> None:
    from rustqueue_postgres.sql import Statements, _inline_parameter

    assert _inline_parameter("SELECT $1, $2 LIMIT $3 OFFSET $3, $4, $12", 3, 50) == (
        "SELECT $1, $2 LIMIT 50 OFFSET 50, $3, $11"
    )
    statements = Statements('"s"', notify=False)
    text = statements.claim_for(25)
    assert "LIMIT 25" in text and "$7" not in text and "$6::bigint" in text
    assert statements.claim_for(25) is text


# ---------------------------------------------------------------- open errors and options


async def test_unreachable_server_gives_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    storage = PostgresStorage(f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=2")
    with pytest.raises(StorageUnavailable, match=f"cannot reach PostgreSQL at 127.0.0.1:{port}/test"):
        await storage.open()


async def test_unknown_role_and_database_give_clear_errors(postgres_base_url: str) -> None:
    base = postgres_base_url.split("://", 1)[1].split("@", 1)[1]
    with pytest.raises(StorageUnavailable, match="refused user 'no_such_role_rq'"):
        await PostgresStorage(f"postgresql://no_such_role_rq:pw@{base}").open()
    host = base.split("/", 1)[0]
    with pytest.raises(StorageUnavailable, match="no_such_db_rq"):
        await PostgresStorage(f"postgresql://postgres@{host}/no_such_db_rq").open()


def test_wrong_password_message_names_user_not_password() -> None:
    error = asyncpg.exceptions.InvalidPasswordError('password authentication failed for user "app"')
    described = describe_open_error(error, "db.example:5432/app", "app")
    assert described is not None
    assert "rejected the password of user 'app'" in str(described)
    assert "secret" not in str(described)


def test_url_options_are_parsed_and_validated() -> None:
    opts = parse_url("postgresql://u:secret@h:6000/db?schema=tenant_1&notify=off&poll_interval=0.2&sslmode=x")
    assert (opts.schema, opts.notify, opts.poll_interval) == ("tenant_1", False, 0.2)
    assert opts.sqlalchemy_url == "postgresql+asyncpg://u:secret@h:6000/db?sslmode=x"
    assert opts.display == "h:6000/db" and opts.statement_cache_size == 100
    assert parse_url("postgresql://u@h/db", {"statement_cache_size": "0"}).statement_cache_size == 0
    with pytest.raises(ConfigError, match="schema"):
        parse_url("postgresql://u@h/db?schema=bad-name")
    with pytest.raises(ConfigError, match="notify"):
        parse_url("postgresql://u@h/db?notify=maybe")
    with pytest.raises(ConfigError, match="pool_size"):
        parse_url("postgresql://u@h/db?pool_size=0")


def test_plugin_entry_point_offers_the_spec_without_heavy_imports() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rustqueue_postgres.plugin as p\n"
        "spec = p.rustqueue_storage_backends()\n"
        "assert spec.name == 'postgres' and 'postgresql' in spec.schemes\n"
        "assert spec.capabilities.multi_node and spec.capabilities.transactional_enqueue\n"
        "assert 'sqlalchemy' not in sys.modules and 'asyncpg' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- claims, acks, transitions


async def test_batch_claim_order_lease_and_deadline(pg_storage: PostgresStorage) -> None:
    low = make_job(priority=1)
    high = make_job(priority=10, at=NOW + timedelta(seconds=1), timeout_ms=500)
    expired = make_job(priority=50, expires_at=NOW)
    await pg_storage.insert_jobs([low, high, expired], NOW)
    claimed = await pg_storage.claim("q", 5, NOW, consumer_id="w1", lease_ms=2000)
    assert [j.id for j in claimed] == [high.id, low.id]
    first = claimed[0]
    assert first.state == "active" and first.worker_id == "w1" and first.deliveries == 1
    assert first.lease_expires_at == NOW + timedelta(seconds=2) and first.lease_ms == 2000
    assert first.deadline_at == NOW + timedelta(milliseconds=500) and claimed[1].deadline_at is None
    assert first.lease_token and claimed[1].lease_token and first.lease_token != claimed[1].lease_token
    assert len(first.lease_token) == 32
    assert await pg_storage.claim("q", 5, NOW, consumer_id="w1", lease_ms=2000) == []


async def test_group_limit_skips_saturated_groups(pg_storage: PostgresStorage) -> None:
    g_jobs = [make_job(group_id="g", at=NOW + timedelta(milliseconds=i)) for i in range(50)]
    other = make_job(at=NOW + timedelta(seconds=1))
    h_job = make_job(group_id="h", at=NOW + timedelta(seconds=2))
    await pg_storage.insert_jobs([*g_jobs, other, h_job], NOW)
    taken = await pg_storage.claim("q", 3, NOW, consumer_id=None, lease_ms=1000, group_limit=1)
    assert [j.id for j in taken] == [g_jobs[0].id, other.id, h_job.id]
    assert await pg_storage.claim("q", 3, NOW, consumer_id=None, lease_ms=1000, group_limit=1) == []
    more = await pg_storage.claim("q", 3, NOW, consumer_id=None, lease_ms=1000, group_limit=2)
    assert [j.id for j in more] == [g_jobs[1].id]


async def test_concurrent_group_limited_claims_never_overfill(pg_storage: PostgresStorage) -> None:
    await pg_storage.insert_jobs([make_job(group_id=f"g{i % 3}") for i in range(30)], NOW)
    results = await asyncio.gather(
        *(pg_storage.claim("q", 2, NOW, consumer_id=f"w{i}", lease_ms=1000, group_limit=2) for i in range(6))
    )
    per_group: dict[str | None, int] = {}
    for job in (j for batch in results for j in batch):
        per_group[job.group_id] = per_group.get(job.group_id, 0) + 1
    assert per_group == {"g0": 2, "g1": 2, "g2": 2}


async def test_complete_reports_blocked_children_and_skips_held_spawns(pg_storage: PostgresStorage) -> None:
    parent = make_job()
    holder = make_job(queue="next", unique_key="k")
    await pg_storage.insert_jobs([parent, holder], NOW)
    child = make_job(state="blocked", depends_on=[parent.id])
    await pg_storage.insert_jobs([child], NOW)
    (active,) = await pg_storage.claim("q", 1, NOW, consumer_id="w", lease_ms=1000)
    spawn_ok = make_job(queue="next", depends_on=[parent.id])
    spawn_held = make_job(queue="next", unique_key="k")
    items = [
        CompleteItem(id=active.id, result={"n": 1}, lease_token=active.lease_token, spawned=[spawn_held, spawn_ok]),
        CompleteItem(id=active.id),  # the same id again: already completed by the first item
    ]
    first, again = await pg_storage.complete(items, NOW)
    assert first.outcome == "ok" and first.job is not None and first.job.result == {"n": 1}
    assert first.job.lease_token is None and first.job.completed_at == NOW
    assert first.blocked_children == [child.id]
    assert first.skipped == [(0, holder.id)]
    assert again.outcome == "state:completed"
    stored = await pg_storage.get_jobs([spawn_ok.id, spawn_held.id])
    assert stored[0] is not None and stored[1] is None


async def test_transition_rounds_keep_per_job_order(pg_storage: PostgresStorage) -> None:
    job = make_job()
    await pg_storage.insert_jobs([job], NOW)
    (active,) = await pg_storage.claim("q", 1, NOW, consumer_id="w", lease_ms=1000)
    later = NOW + timedelta(seconds=1)
    outcomes = await pg_storage.transition(
        [
            Change(id=job.id, expected=frozenset({"active"}), lease_token="stale", updates={"state": "waiting"}),
            Change(
                id=job.id,
                expected=frozenset({"active"}),
                lease_token=active.lease_token,
                updates={"state": "waiting", "lease_token": None, "lease_expires_at": None},
            ),
            Change(id=job.id, expected=frozenset({"active"}), updates={"state": "dlq"}),
            Change(id="missing", expected=frozenset({"active"}), updates={"state": "dlq"}),
            Change(
                id=job.id,
                expected=frozenset({"waiting"}),
                updates={"logs": [LogEntry(timestamp=later, message="m")]},
            ),
        ],
        later,
    )
    assert [o.outcome for o in outcomes] == ["lease_lost", "ok", "state:waiting", "not_found", "ok"]
    final = outcomes[-1].job
    assert final is not None and final.state == "waiting" and final.updated_at == later
    assert final.logs == [LogEntry(timestamp=later, message="m")]


async def test_insert_conflicts_write_nothing(pg_storage: PostgresStorage) -> None:
    held = make_job(unique_key="k")
    await pg_storage.insert_jobs([held], NOW)
    fresh, dup = make_job(), make_job(unique_key="k")
    with pytest.raises(InsertConflict) as info:
        await pg_storage.insert_jobs([fresh, dup], NOW)
    assert (info.value.index, info.value.key, info.value.holder_id) == (1, "k", held.id)
    assert await pg_storage.get_jobs([fresh.id]) == [None]
    a, b = make_job(unique_key="z"), make_job(unique_key="z")
    with pytest.raises(InsertConflict) as info:
        await pg_storage.insert_jobs([a, b], NOW)
    assert (info.value.index, info.value.holder_id) == (1, a.id)


async def test_reinserting_a_committed_batch_is_a_no_op(pg_storage: PostgresStorage) -> None:
    jobs = [make_job(unique_key="r1"), make_job()]
    await pg_storage.insert_jobs(jobs, NOW)
    await pg_storage.insert_jobs(jobs, NOW)  # what a retry after a lost commit acknowledgement does
    assert (await pg_storage.count_jobs())["q"].waiting == 2


async def test_find_jobs_pages_in_every_order(pg_storage: PostgresStorage) -> None:
    jobs = [make_job(at=NOW + timedelta(seconds=i), priority=i % 3, tags=["t"] if i % 2 else []) for i in range(7)]
    await pg_storage.insert_jobs(jobs, NOW)
    for order, expected in [
        ("id", sorted(j.id for j in jobs)),
        ("sort_key", [j.id for j in sorted(jobs, key=lambda j: j.sort_key)]),
        ("created", [j.id for j in sorted(jobs, key=lambda j: (j.created_at, j.id))]),
        ("updated_desc", [j.id for j in sorted(jobs, key=lambda j: (j.updated_at, j.id), reverse=True)]),
    ]:
        seen: list[str] = []
        cursor = None
        while True:
            page, cursor = await pg_storage.find_jobs(JobFilter(queue="q", order=order), 3, cursor)
            seen.extend(j.id for j in page)
            if cursor is None:
                break
        assert seen == expected, order
    tagged, _ = await pg_storage.find_jobs(JobFilter(tags=["t"]), 100)
    assert sorted(j.id for j in tagged) == sorted(j.id for j in jobs if j.tags)


async def test_rename_queue_moves_jobs_keys_and_config(pg_storage: PostgresStorage) -> None:
    from rustqueue_core.models import QueueConfig

    await pg_storage.put_queue_config(QueueConfig(name="old", paused=True))
    await pg_storage.insert_jobs([make_job("old", unique_key="k"), make_job("old")], NOW)
    assert await pg_storage.rename_queue("old", "new", NOW) == 2
    assert await pg_storage.queue_names() == ["new"]
    configs = await pg_storage.get_queue_configs()
    assert list(configs) == ["new"] and configs["new"].paused
    with pytest.raises(InsertConflict):
        await pg_storage.insert_jobs([make_job("new", unique_key="k")], NOW)


# ---------------------------------------------------------------- wake-ups, connection loss, leader


async def test_notify_wakes_a_waiter_in_another_storage(pg_url: str, pg_storage: PostgresStorage) -> None:
    other = PostgresStorage(pg_url)
    await other.open()
    try:
        assert other.listening
        waiter = asyncio.create_task(other.wait(["q"], 30))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await pg_storage.insert_jobs([make_job("unrelated")], NOW)
        await asyncio.sleep(0.2)
        assert not waiter.done()  # only its own queues wake it
        await pg_storage.insert_jobs([make_job("q")], NOW)
        assert await asyncio.wait_for(waiter, timeout=10) is True
        assert await other.wait(["q"], 0.05) is False  # nothing new: times out
    finally:
        await other.close()


async def test_delayed_inserts_do_not_wake_but_promotion_does(pg_url: str, pg_storage: PostgresStorage) -> None:
    other = PostgresStorage(pg_url)
    await other.open()
    try:
        delayed = make_job(state="delayed", delay_until=NOW + timedelta(seconds=1))
        waiter = asyncio.create_task(other.wait(["q"], 30))
        await asyncio.sleep(0.1)
        await pg_storage.insert_jobs([delayed], NOW)
        await asyncio.sleep(0.2)
        assert not waiter.done()
        assert await pg_storage.promote_due(NOW, 10) == []
        assert await pg_storage.promote_due(NOW + timedelta(seconds=1), 10) == [(delayed.id, "q")]
        assert await asyncio.wait_for(waiter, timeout=10) is True
    finally:
        await other.close()


async def test_poll_only_mode_declares_no_wakeups_and_polls(pg_url: str) -> None:
    storage = PostgresStorage(pg_url + "&notify=off&poll_interval=0.05")
    await storage.open()
    try:
        assert storage.capabilities.wakeups is False and not storage.listening
        await storage.insert_jobs([make_job()], NOW)
        assert await asyncio.wait_for(storage.wait(["q"], 10), timeout=5) is True
        assert len(await storage.claim("q", 5, NOW, consumer_id=None, lease_ms=1000)) == 1
    finally:
        await storage.close()


async def _kill_sessions(url: str, schema: str) -> int:
    conn = await admin_connection(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                f"rustqueue:{schema}",
            )
        )
    finally:
        await conn.close()


async def test_lost_connections_are_replaced_and_listener_returns(pg_url: str, pg_storage: PostgresStorage) -> None:
    await pg_storage.insert_jobs([make_job()], NOW)
    assert pg_storage.listening
    assert await _kill_sessions(pg_url, pg_storage.schema) >= 2  # pool connection + listener
    await asyncio.sleep(0.2)
    await pg_storage.insert_jobs([make_job()], NOW)
    assert len(await pg_storage.claim("q", 5, NOW, consumer_id=None, lease_ms=1000)) == 2
    for _ in range(100):
        if pg_storage.listening:
            break
        await asyncio.sleep(0.1)
    assert pg_storage.listening
    other = PostgresStorage(pg_url)
    await other.open()
    try:
        waiter = asyncio.create_task(pg_storage.wait(["q"], 30))
        await asyncio.sleep(0.1)
        await other.insert_jobs([make_job()], NOW)
        assert await asyncio.wait_for(waiter, timeout=10) is True
    finally:
        await other.close()


async def test_one_leader_at_a_time(pg_url: str, pg_storage: PostgresStorage) -> None:
    other = PostgresStorage(pg_url)
    await other.open()
    try:
        assert await pg_storage.try_acquire_leader() is True
        assert await pg_storage.try_acquire_leader() is True
        assert await other.try_acquire_leader() is False
        await pg_storage.release_leader()
        assert await other.try_acquire_leader() is True
        assert await pg_storage.try_acquire_leader() is False
    finally:
        await other.close()
    assert await pg_storage.try_acquire_leader() is True


async def test_nul_characters_in_payloads_round_trip_and_in_text_are_rejected(
    pg_storage: PostgresStorage,
) -> None:
    from rustqueue_core.errors import ValidationError

    job = make_job(data={"k": "a\x00b"}, metadata={"m": "\x00"})
    await pg_storage.insert_jobs([job], NOW)
    assert await pg_storage.get_jobs([job.id]) == [job]
    (active,) = await pg_storage.claim("q", 1, NOW, consumer_id=None, lease_ms=1000)
    (done,) = await pg_storage.complete([CompleteItem(id=active.id, result=["\x00"])], NOW)
    assert done.job is not None and done.job.result == ["\x00"]
    (changed,) = await pg_storage.transition(
        [
            Change(
                id=job.id,
                expected=frozenset({"completed"}),
                updates={"logs": [LogEntry(timestamp=NOW, message="\x00")]},
            )
        ],
        NOW,
    )
    assert changed.job is not None and changed.job.logs[0].message == "\x00"
    bad = msgspec.structs.replace(make_job(), name="a\x00b")
    with pytest.raises(ValidationError, match="NUL"):
        await pg_storage.insert_jobs([make_job(), bad], NOW)
    assert (await pg_storage.count_jobs())["q"].total == 1


async def test_an_ack_whose_answer_was_lost_is_not_reported_as_a_second_ack(pg_storage: PostgresStorage) -> None:
    """The connection drops after the ack committed: the retry finds the job completed at this call's
    timestamp and reports the ack as done (with the children it released), not as a state mismatch."""
    parent = make_job()
    child = make_job(state="blocked", depends_on=[parent.id])
    await pg_storage.insert_jobs([parent, child], NOW)
    (claimed,) = await pg_storage.claim("q", 1, NOW, consumer_id="w", lease_ms=30_000)
    assert claimed.id == parent.id
    pool = pg_storage._pool
    assert pool is not None
    acquire = pool.acquire
    lost: list[str] = []

    class AnswerLost:
        """A connection whose first ack statement commits and then loses its answer."""

        def __init__(self, conn: Any) -> None:
            self._conn = conn

        async def fetch(self, statement: str, *args: Any) -> Any:
            rows = await self._conn.fetch(statement, *args)
            if not lost and statement.startswith(f"UPDATE \"{pg_storage.schema}\".jobs j SET state = 'completed'"):
                lost.append(statement)
                raise ConnectionResetError("connection lost after COMMIT")
            return rows

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    async def acquire_losing() -> Any:
        return AnswerLost(await acquire())

    pool.acquire = acquire_losing  # type: ignore[method-assign]
    try:
        then = NOW + timedelta(seconds=1)
        (outcome,) = await pg_storage.complete([CompleteItem(id=parent.id, consumer_id="w")], then)
    finally:
        pool.acquire = acquire  # type: ignore[method-assign]
    assert lost, "the fault was injected"
    assert outcome.outcome == OK and outcome.job is not None
    assert (outcome.job.state, outcome.job.completed_at) == ("completed", then)
    assert outcome.blocked_children == [child.id]
    # Acking it again, in a new call, is still a state mismatch.
    (again,) = await pg_storage.complete([CompleteItem(id=parent.id)], then)
    assert again.outcome != OK
