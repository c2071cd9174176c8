"""SQLite-specific behaviour: URL options, on-disk encoding, indexes, group commit, locking, wake-ups."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from rustqueue_core.builtin.sqlite import SQLITE_SPEC, SQLiteStorage, create_storage, parse_sqlite_url
from rustqueue_core.builtin.sqlite_hybrid import HybridSQLiteStorage
from rustqueue_core.builtin.sqlite_ops import _CLAIM_DUE, _CLAIM_WAITING
from rustqueue_core.builtin.sqlite_schema import INLINE_DATA_MAX, SCHEMA_VERSION
from rustqueue_core.errors import ConfigError
from rustqueue_core.storage import CompleteItem, InsertConflict, JobFilter
from rustqueue_core.testing.jobs import T0, at, make_job, make_jobs
from rustqueue_core.testing.resolve import resolve_storage_spec


@pytest_asyncio.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    store = SQLiteStorage(tmp_path / "jobs.db")
    await store.open()
    yield store
    await store.close()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


# ------------------------------------------------------------------------------------------ URL


def test_url_paths_and_options() -> None:
    assert parse_sqlite_url("sqlite:///data/jobs.db") == ("data/jobs.db", {})
    assert parse_sqlite_url("sqlite:////var/lib/jobs.db?durability=full") == (
        "/var/lib/jobs.db",
        {"durability": "full"},
    )
    assert parse_sqlite_url("sqlite:///a.db?mode=hybrid", {"snapshot_interval": 2}) == (
        "a.db",
        {"mode": "hybrid", "snapshot_interval": "2"},
    )
    with pytest.raises(ConfigError):
        parse_sqlite_url("sqlite://")
    with pytest.raises(ConfigError, match="unknown sqlite URL option"):
        create_storage("sqlite:///a.db?colour=blue", {})
    with pytest.raises(ConfigError):
        create_storage("sqlite:///a.db?durability=sometimes", {})


def test_capabilities_per_instance(tmp_path: Path) -> None:
    normal = create_storage(f"sqlite:///{tmp_path / 'a.db'}", {})
    full = create_storage(f"sqlite:///{tmp_path / 'b.db'}?durability=full", {})
    hybrid = create_storage(f"sqlite:///{tmp_path / 'c.db'}?mode=hybrid&snapshot_interval=0.5", {})
    assert normal.capabilities.durable and normal.capabilities.multi_process
    assert not normal.capabilities.power_safe and not normal.capabilities.wakeups
    assert normal.capabilities.group_limits and normal.capabilities.claims_due_delayed
    assert full.capabilities.power_safe and full.capabilities.durable
    assert isinstance(hybrid, HybridSQLiteStorage)
    caps = hybrid.capabilities
    assert caps.write_back and caps.loss_window_ms == 500 and not caps.durable and not caps.multi_process


def test_registered_through_the_entry_point() -> None:
    spec = resolve_storage_spec("sqlite:///whatever.db")
    assert spec is SQLITE_SPEC and spec.schemes == ("sqlite",)


# ---------------------------------------------------------------------------------- on-disk form


async def test_file_uses_wal_and_integer_microsecond_timestamps(storage: SQLiteStorage) -> None:
    early = make_job(rank=1, created_at=at(0.000001), updated_at=at(0.000001))
    late = make_job(rank=2, created_at=at(100), updated_at=at(100))
    await storage.insert_jobs([late, early], T0)
    conn = raw(storage.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT DISTINCT typeof(created_at) FROM jobs").fetchall() == [("integer",)]
    ordered = [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY created_at")]
    assert ordered == [early.id, late.id]
    conn.close()


def test_claim_statements_use_the_claim_index(tmp_path: Path) -> None:
    from rustqueue_core.builtin import sqlite_ops

    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    sqlite_ops.migrate(conn)
    params = (1, None, 1, 1, "q", 10)
    for sql in (_CLAIM_WAITING, _CLAIM_DUE):
        plan = " ".join(str(row) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "jobs_claim" in plan
    assert "jobs_state" in " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + _CLAIM_DUE, params))
    children = " ".join(
        str(r) for r in conn.execute("EXPLAIN QUERY PLAN SELECT child_id FROM job_deps WHERE parent_id = 'x'")
    )
    assert "PRIMARY KEY" in children or "job_deps" in children
    conn.close()


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    first = SQLiteStorage(path)
    await first.open()
    jobs = make_jobs(3)
    await first.insert_jobs(jobs, T0)
    await first.close()
    second = SQLiteStorage(path)
    await second.open()
    try:
        assert await second.get_jobs([j.id for j in jobs]) == jobs
    finally:
        await second.close()


async def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A file written by schema version 1 (claim index without the covering columns, ``jobs_state`` over
    every row) opens with its jobs intact, its indexes rebuilt, and the claim path on the new index."""
    path = tmp_path / "v1.db"
    first = SQLiteStorage(path)
    await first.open()
    jobs = make_jobs(3)
    await first.insert_jobs(jobs, T0)
    await first.close()
    conn = raw(path)
    conn.executescript(
        "DROP INDEX jobs_claim; DROP INDEX jobs_state;"
        "CREATE INDEX jobs_claim ON jobs (queue, sort_key) WHERE state = 'waiting';"
        "CREATE INDEX jobs_state ON jobs (state, due_at, queue);"
        "UPDATE rq_meta SET value = '1' WHERE key = 'schema_version';"
    )
    conn.close()
    second = SQLiteStorage(path)
    await second.open()
    try:
        assert await second.get_jobs([j.id for j in jobs]) == jobs
        claimed = await second.claim(jobs[0].queue, 10, T0, consumer_id=None, lease_ms=30_000)
        assert sorted(j.id for j in claimed) == sorted(j.id for j in jobs)
    finally:
        await second.close()
    conn = raw(path)
    try:
        assert conn.execute("SELECT value FROM rq_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        assert "expires_at, state" in indexes["jobs_claim"]
        assert "WHERE state <> 'waiting'" in indexes["jobs_state"]
    finally:
        conn.close()


async def test_large_payloads_live_out_of_the_row(tmp_path: Path) -> None:
    """A payload over the inline limit is stored once in ``job_payloads``: state changes rewrite only the
    small job row, every read path (by id, a claim from another instance, a listing, a delete) still
    returns it, and deleting the job deletes it."""
    path = tmp_path / "payloads.db"
    big_data = {"blob": "x" * (INLINE_DATA_MAX + 100)}
    small, big = make_jobs(2)
    big.data = big_data
    first = SQLiteStorage(path)
    await first.open()
    await first.insert_jobs([small, big], T0)
    await first.close()
    conn = raw(path)
    try:
        assert conn.execute("SELECT data IS NULL FROM jobs WHERE id = ?", (big.id,)).fetchone() == (1,)
        assert conn.execute("SELECT data IS NULL FROM jobs WHERE id = ?", (small.id,)).fetchone() == (0,)
        assert [r[0] for r in conn.execute("SELECT id FROM job_payloads")] == [big.id]
    finally:
        conn.close()
    second = SQLiteStorage(path)  # a fresh instance: nothing cached, every row is read
    await second.open()
    try:
        assert await second.get_jobs([big.id, small.id]) == [big, small]
        claimed = await second.claim(big.queue, 10, T0, consumer_id=None, lease_ms=30_000)
        assert {j.id: j.data for j in claimed} == {small.id: small.data, big.id: big_data}
        done = await second.complete([CompleteItem(id=big.id)], T0)
        assert done[0].job is not None and done[0].job.data == big_data
        listed, _ = await second.find_jobs(JobFilter(ids=[big.id]), 10)
        assert listed[0].data == big_data
        deleted = await second.delete_jobs([big.id], None, 10)
        assert [j.data for j in deleted] == [big_data]
    finally:
        await second.close()
    conn = raw(path)
    try:
        assert conn.execute("SELECT count(*) FROM job_payloads").fetchone() == (0,)
    finally:
        conn.close()


async def test_steady_writes_restart_the_wal_instead_of_growing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under writes that never pause, PASSIVE checkpoints never catch up; past its limit the WAL is
    restarted: the log starts over instead of holding every frame ever written."""
    from rustqueue_core.builtin import sqlite_writer

    monkeypatch.setattr(sqlite_writer, "WAL_RESTART_FRAMES", 64)
    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_EVERY_COMMITS", 8)
    path = tmp_path / "wal.db"
    store = SQLiteStorage(path)
    await store.open()
    try:
        commits_before = store.group_commit_stats[0]
        for batch in range(600):
            await store.insert_jobs(make_jobs(5, start=batch * 5), T0)
        commits = store.group_commit_stats[0] - commits_before
        checkpointer = store._writer._checkpointer
        assert checkpointer is not None
        deadline = time.monotonic() + 10
        while checkpointer.restarts == 0 and time.monotonic() < deadline:
            await store.insert_jobs(make_jobs(1), T0)
            await asyncio.sleep(0.05)
        assert checkpointer.restarts >= 1
        assert commits >= 600
        # A restart lets the next write start the log over; until then the old frames are still the log.
        await store.insert_jobs(make_jobs(1, start=10_000), T0)
        # the log started over: it now holds fewer frames than the file has room for (its high-water mark)
        frames_held = (tmp_path / "wal.db-wal").stat().st_size // (4096 + 24)
        conn = raw(path)
        try:
            log_frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        finally:
            conn.close()
        assert log_frames < frames_held
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    first = SQLiteStorage(path)
    await first.open()
    await first.close()
    conn = raw(path)
    conn.execute("UPDATE rq_meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(Exception, match="newer"):
        again = SQLiteStorage(path)
        await again.open()


# ----------------------------------------------------------------------------------- group commit


async def test_concurrent_single_pushes_share_commits(storage: SQLiteStorage) -> None:
    commits_before, ops_before = storage.group_commit_stats
    jobs = make_jobs(100)
    await asyncio.gather(*(storage.insert_jobs([j], T0) for j in jobs))
    commits, operations = storage.group_commit_stats
    assert operations - ops_before == 100
    assert commits - commits_before <= 10
    assert all(j is not None for j in await storage.get_jobs([j.id for j in jobs]))


async def _insert_after_iterations(storage: SQLiteStorage, iterations: int, rank: int) -> None:
    """Reach the storage ``iterations`` loop iterations late, as a request handler a few awaits deep does."""
    for _ in range(iterations):
        await asyncio.sleep(0)
    await storage.insert_jobs([make_job(rank=rank)], T0)


async def test_writes_arriving_over_consecutive_iterations_share_one_commit(storage: SQLiteStorage) -> None:
    """Three writes in one iteration, then one more in each of the next two: one COMMIT."""
    from rustqueue_core.builtin.sqlite_writer import GATHER_ITERATIONS, GATHER_MIN_GROUP

    assert GATHER_ITERATIONS >= 2 and GATHER_MIN_GROUP <= 3
    delays = [0, 0, 0, 1, 2]
    commits_before, ops_before = storage.group_commit_stats
    await asyncio.gather(*(_insert_after_iterations(storage, d, rank=i) for i, d in enumerate(delays)))
    commits, operations = storage.group_commit_stats
    assert operations - ops_before == len(delays)
    assert commits - commits_before == 1
    assert len(await storage.claim("q", 50, T0, consumer_id=None, lease_ms=1_000)) == len(delays)


async def test_a_group_stops_gathering_after_its_bound(storage: SQLiteStorage) -> None:
    """A steady stream (a write in every iteration) does not hold the first writer's commit forever:
    the group is committed after ``GATHER_ITERATIONS`` extra iterations."""
    from rustqueue_core.builtin.sqlite_writer import GATHER_ITERATIONS

    delays = [0, 0, 0, *range(1, 4 * (GATHER_ITERATIONS + 1))]
    commits_before, ops_before = storage.group_commit_stats
    await asyncio.gather(*(_insert_after_iterations(storage, d, rank=i) for i, d in enumerate(delays)))
    commits, operations = storage.group_commit_stats
    assert operations - ops_before == len(delays)
    assert commits - commits_before >= 2
    assert len(await storage.claim("q", 100, T0, consumer_id=None, lease_ms=1_000)) == len(delays)


async def _iterations_until_committed(storage: SQLiteStorage, writers: int) -> int:
    """Loop iterations from ``writers`` concurrent single-job inserts to all of them returning."""
    iterations = 0
    stop = False

    async def count_iterations() -> None:
        nonlocal iterations
        while not stop:
            iterations += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_iterations())
    await asyncio.sleep(0)
    start = iterations
    await asyncio.gather(*(storage.insert_jobs([make_job(rank=i)], T0) for i in range(writers)))
    waited = iterations - start
    stop = True
    await counter
    return waited


async def test_two_writers_taking_turns_do_not_wait_for_a_third(
    storage: SQLiteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A producer and a consumer taking turns have nobody to wait for: their group commits as soon as
    it would without gathering."""
    from rustqueue_core.builtin import sqlite_writer

    commits_before = storage.group_commit_stats[0]
    waited = await _iterations_until_committed(storage, 2)
    assert storage.group_commit_stats[0] - commits_before == 1
    monkeypatch.setattr(sqlite_writer, "GATHER_ITERATIONS", 0)
    assert waited == await _iterations_until_committed(storage, 2)


async def test_a_lone_write_commits_without_waiting_for_company(
    storage: SQLiteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing else arriving, a write returns after as many loop iterations as without gathering."""
    from rustqueue_core.builtin import sqlite_writer

    waited = await _iterations_until_committed(storage, 1)
    monkeypatch.setattr(sqlite_writer, "GATHER_ITERATIONS", 0)
    assert waited == await _iterations_until_committed(storage, 1)


async def test_a_failing_operation_in_a_group_undoes_only_itself(storage: SQLiteStorage) -> None:
    holder = make_job(rank=0, unique_key="k")
    await storage.insert_jobs([holder], T0)
    before = make_job(rank=1)
    doomed = [make_job(rank=2), make_job(rank=3, unique_key="k")]
    after = make_job(rank=4)
    results = await asyncio.gather(
        storage.insert_jobs([before], T0),
        storage.insert_jobs(doomed, T0),
        storage.insert_jobs([after], T0),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], InsertConflict)
    got = await storage.get_jobs([before.id, doomed[0].id, doomed[1].id, after.id])
    assert [j is not None for j in got] == [True, False, False, True]


async def test_durability_full_writes_through_the_writer_thread(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "full.db", durability="full")
    await store.open()
    try:
        jobs = make_jobs(20)
        await asyncio.gather(*(store.insert_jobs([j], T0) for j in jobs))
        commits, operations = store.group_commit_stats
        assert operations == 20 and commits < 20
        assert len(await store.claim("q", 50, T0, consumer_id=None, lease_ms=1_000)) == 20
    finally:
        await store.close()


async def test_writes_wait_for_another_process_lock(storage: SQLiteStorage) -> None:
    """A write while another connection holds the write lock completes after it is released."""
    blocker = raw(storage.path)
    blocker.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        time.sleep(0.3)
        blocker.execute("COMMIT")
        released.set()

    thread = threading.Thread(target=release)
    thread.start()
    job = make_job()
    started = time.monotonic()
    await asyncio.wait_for(storage.insert_jobs([job], T0), 10)
    assert released.is_set() and time.monotonic() - started >= 0.25
    thread.join()
    blocker.close()
    (claimed,) = await storage.claim("q", 1, T0, consumer_id=None, lease_ms=1_000)
    assert claimed.id == job.id


async def test_read_your_writes_after_each_call(storage: SQLiteStorage) -> None:
    for i in range(20):
        job = make_job(rank=i)
        await storage.insert_jobs([job], T0)
        (claimed,) = await storage.claim("q", 1, T0, consumer_id=None, lease_ms=1_000)
        assert claimed.id == job.id
        found, _ = await storage.find_jobs(JobFilter(ids=[job.id]), 1)
        assert found[0].state == "active"


async def test_wait_notices_commits_of_other_connections(storage: SQLiteStorage) -> None:
    assert await storage.wait(["q"], 0.1) is False

    def other_process_push() -> None:
        time.sleep(0.1)
        conn = raw(storage.path)
        conn.execute("CREATE TABLE IF NOT EXISTS nudge (x)")
        conn.execute("INSERT INTO nudge VALUES (1)")
        conn.close()

    thread = threading.Thread(target=other_process_push)
    thread.start()
    started = time.monotonic()
    assert await storage.wait(["q"], 5.0) is True
    assert time.monotonic() - started < 2.0
    thread.join()


async def test_closed_storage_refuses_work(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "c.db")
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.insert_jobs([make_job()], T0)


async def test_transition_into_a_held_key_reports_duplicate_key(storage: SQLiteStorage) -> None:
    from rustqueue_core.builtin.sqlite_ops import DUPLICATE_KEY
    from rustqueue_core.storage import Change

    old = make_job(rank=1, unique_key="k", state="dlq")
    holder = make_job(rank=2, unique_key="k")
    other = make_job(rank=3)
    await storage.insert_jobs([old, holder, other], T0)
    outcomes = await storage.transition(
        [
            Change(id=old.id, expected=frozenset({"dlq"}), updates={"state": "waiting"}),
            Change(id=other.id, expected=frozenset({"waiting"}), updates={"state": "cancelled"}),
        ],
        at(1),
    )
    assert [o.outcome for o in outcomes] == [DUPLICATE_KEY, "ok"]
    assert [j.state for j in await storage.get_jobs([old.id, other.id])] == ["dlq", "cancelled"]


async def test_close_commits_calls_already_submitted(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "c.db")
    await store.open()
    jobs = make_jobs(10)
    pushes = [asyncio.ensure_future(store.insert_jobs([j], T0)) for j in jobs]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*pushes)
    again = SQLiteStorage(tmp_path / "c.db")
    await again.open()
    try:
        assert all(j is not None for j in await again.get_jobs([j.id for j in jobs]))
    finally:
        await again.close()


def test_housekeeping_filters_use_their_indexes(tmp_path: Path) -> None:
    """Every query a housekeeping tick makes is an index search, never a scan of all jobs."""
    from rustqueue_core.builtin import sqlite_ops
    from rustqueue_core.builtin.sqlite_query import filter_sql, source
    from rustqueue_core.storage import UNFINISHED_STATES

    conn = sqlite3.connect(tmp_path / "plan.db", isolation_level=None)
    sqlite_ops.migrate(conn)
    expected = {
        "jobs_expires": JobFilter(states=["waiting", "delayed", "blocked"], expires_at_lte=T0),
        "jobs_deadline": JobFilter(states=["active"], deadline_before=T0),
        "jobs_state": JobFilter(states=["active"], lease_expires_before=T0),
        "sqlite_autoindex_jobs_1": JobFilter(children_of=["p"], states=["blocked"]),
        "jobs_remove_on_complete": JobFilter(
            states=["completed"], remove_on_complete=True, without_blocked_children=True
        ),
        "jobs_unique": JobFilter(queue="q", unique_key="k", states=sorted(UNFINISHED_STATES)),
        "jobs_active_group": JobFilter(queue="q", group_id="g", states=["active"]),
        "jobs_flow": JobFilter(flow_id="f"),
    }
    for index, job_filter in expected.items():
        where, params = filter_sql(job_filter)
        plan = " | ".join(
            row[3]
            for row in conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM {source(job_filter)} WHERE {where}", params)
        )
        assert f"INDEX {index}" in plan, (index, plan)
    for states, bound in ((["completed"], "completed_before"), (["dlq"], "updated_before")):
        job_filter = JobFilter(states=states, without_blocked_children=True, **{bound: T0})
        where, params = filter_sql(job_filter)
        plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE {where}", params))
        assert "jobs_state (state=? AND due_at<?)" in plan
    conn.close()


async def test_ack_sees_changes_made_by_another_process(storage: SQLiteStorage) -> None:
    """The completed job returned by an ack reflects the stored row, even when another process changed
    it after this process claimed it."""
    from rustqueue_core.storage import CompleteItem

    await storage.insert_jobs(make_jobs(2), T0)
    first, second = await storage.claim("q", 2, T0, consumer_id="w", lease_ms=60_000)
    other = raw(storage.path)
    other.execute("UPDATE jobs SET progress = 55, rev = rev + 1 WHERE id = ?", (first.id,))
    other.close()
    outcomes = await storage.complete([CompleteItem(id=first.id), CompleteItem(id=second.id, result=[1])], at(1))
    assert [o.job.progress for o in outcomes if o.job] == [55, None]
    assert [o.job for o in outcomes] == await storage.get_jobs([first.id, second.id])


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ConfigError, match="memory://"):
        create_storage("sqlite:///:memory:", {})


async def test_claimers_on_other_threads_and_loops_never_share_a_job(storage: SQLiteStorage) -> None:
    """Calls from other event loops go through the writer thread; each job is still claimed once."""
    jobs = make_jobs(400)
    await storage.insert_jobs(jobs, T0)
    claimed: list[list[str]] = [[] for _ in range(4)]

    def worker(index: int) -> None:
        async def run() -> None:
            while got := await storage.claim("q", 3, T0, consumer_id=f"t{index}", lease_ms=60_000):
                claimed[index].extend(j.id for j in got)
                await storage.complete([CompleteItem(id=j.id, lease_token=j.lease_token) for j in got], at(1))

        asyncio.run(run())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        # keep this loop serving its own calls too, while the threads run
        await storage.claim("other", 1, T0, consumer_id=None, lease_ms=1_000)
        await asyncio.sleep(0.01)
    everything = [i for ids in claimed for i in ids]
    assert len(everything) == len(set(everything)) == 400
    counts = await storage.count_jobs(["q"])
    assert counts["q"].completed == 400
