"""Hybrid mode: write-back within the snapshot interval, one transaction per flush, restart loading,
read-through of terminal jobs, final flush on close."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from rustqueue_core.builtin.sqlite import create_storage
from rustqueue_core.builtin.sqlite_hybrid import HybridSQLiteStorage
from rustqueue_core.models import QueueConfig
from rustqueue_core.storage import CompleteItem, JobFilter
from rustqueue_core.testing.jobs import T0, at, make_job, make_jobs, make_schedule


def hybrid(path: Path, interval: float = 0.2, max_dirty: int = 5000) -> HybridSQLiteStorage:
    store = create_storage(f"sqlite:///{path}?mode=hybrid&snapshot_interval={interval}&max_dirty={max_dirty}", {})
    assert isinstance(store, HybridSQLiteStorage)
    return store


def rows_on_disk(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM jobs")}
    finally:
        conn.close()


async def test_dirty_jobs_reach_disk_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = hybrid(path, interval=0.2)
    await store.open()
    try:
        jobs = make_jobs(5)
        await store.insert_jobs(jobs, T0)
        assert rows_on_disk(path) == set()  # served from memory, not yet written
        for _ in range(100):  # up to 5 s
            if rows_on_disk(path) == {j.id for j in jobs}:
                break
            await asyncio.sleep(0.05)
        assert rows_on_disk(path) == {j.id for j in jobs}
    finally:
        await store.close()


async def test_max_dirty_forces_a_flush(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = hybrid(path, interval=60, max_dirty=10)
    await store.open()
    try:
        await store.insert_jobs(make_jobs(10), T0)
        assert len(rows_on_disk(path)) == 10
        assert store.flushes == 1
    finally:
        await store.close()


async def test_close_flushes_and_restart_shows_unfinished_jobs(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = hybrid(path, interval=60)
    await store.open()
    parent = make_job("q", 1)
    blocked = make_job("q", 2, state="blocked", depends_on=[parent.id])
    delayed = make_job("q", 3, state="delayed", delay_until=at(30))
    done = make_job("q", 4)
    await store.insert_jobs([parent, blocked, delayed, done], T0)
    await store.put_queue_config(QueueConfig(name="q", paused=True))
    await store.put_schedule(make_schedule("s"))
    (claimed, _) = await store.claim("q", 2, T0, consumer_id="w", lease_ms=60_000)
    assert claimed.id == parent.id
    await store.close()

    again = hybrid(path, interval=60)
    await again.open()
    try:
        waiting, _ = await again.find_jobs(JobFilter(states=["waiting", "blocked", "delayed", "active"]), 10)
        assert {j.id: j.state for j in waiting} == {
            parent.id: "active",
            blocked.id: "blocked",
            delayed.id: "delayed",
            done.id: "active",
        }
        assert (await again.get_queue_configs())["q"].paused is True
        assert [s.name for s in await again.list_schedules()] == ["s"]
        children, _ = await again.find_jobs(JobFilter(children_of=[parent.id]), 10)
        assert [j.id for j in children] == [blocked.id]
    finally:
        await again.close()


async def test_terminal_jobs_are_read_through_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = hybrid(path, interval=60)
    await store.open()
    job = make_job()
    await store.insert_jobs([job], T0)
    (claimed,) = await store.claim("q", 1, T0, consumer_id=None, lease_ms=1_000)
    await store.complete([CompleteItem(id=claimed.id, result=42)], at(1))
    await store.close()

    again = hybrid(path, interval=60)
    await again.open()
    try:
        assert await again._mem.get_jobs([job.id]) == [None]  # not loaded: terminal
        (got,) = await again.get_jobs([job.id])
        assert got is not None and got.state == "completed" and got.result == 42
        counts = await again.count_jobs()
        assert counts["q"].completed == 1
        (again_done,) = await again.complete([CompleteItem(id=job.id)], at(2))
        assert again_done.outcome == "state:completed"
        deleted = await again.delete_jobs(filter=JobFilter(states=["completed"], completed_before=at(5)))
        assert [j.id for j in deleted] == [job.id]
        assert await again.get_jobs([job.id]) == [None]
    finally:
        await again.close()
    assert rows_on_disk(path) == set()


async def test_each_flush_is_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = hybrid(path, interval=60)
    await store.open()
    try:
        await store.insert_jobs(make_jobs(300), T0)
        await store.claim("q", 100, T0, consumer_id=None, lease_ms=1_000)
        commits_before, _ = store._disk.group_commit_stats
        await store.flush()
        commits_after, _ = store._disk.group_commit_stats
        assert commits_after - commits_before == 1
        assert len(rows_on_disk(path)) == 300
    finally:
        await store.close()
