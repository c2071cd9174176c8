"""The row cache: claims and acks return exactly the stored job, whether the rows come from the
cache (this storage inserted them), from the statement (another writer touched them last), or from a
read (the cache is out of step), and across storages on one schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from rustqueue_postgres.rowcache import RowCache
from rustqueue_postgres.storage import PostgresStorage

from rustqueue_core.ids import new_ids
from rustqueue_core.models import Job
from rustqueue_core.sortkey import sort_key, timestamp_us
from rustqueue_core.storage import Change, CompleteItem

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(seconds=3)


def make_jobs(n: int, **fields: Any) -> list[Job]:
    jobs = []
    for i, (job_id, raw) in enumerate(new_ids(n)):
        at = NOW + timedelta(milliseconds=i)
        key = sort_key("max_first", 0, False, timestamp_us(at), raw)
        jobs.append(
            Job(id=job_id, name="task", queue="q", created_at=at, updated_at=at, sort_key=key, data={"i": i}, **fields)
        )
    return jobs


async def stored(storage: PostgresStorage, jobs: list[Job]) -> list[Job | None]:
    return await storage.get_jobs([j.id for j in jobs])


async def sql(storage: PostgresStorage, statement: str, *args: Any) -> None:
    conn = await asyncpg.connect(storage.url.split("?", 1)[0])
    try:
        await conn.execute(statement.replace("JOBS", f'"{storage.schema}".jobs'), *args)
    finally:
        await conn.close()


async def test_cached_claims_and_acks_equal_the_stored_rows(pg_storage: PostgresStorage) -> None:
    jobs = make_jobs(3, timeout_ms=700) + make_jobs(2)
    await pg_storage.insert_jobs(jobs, NOW)
    assert len(pg_storage._cache) == 5
    claimed = await pg_storage.claim("q", 10, LATER, consumer_id="w", lease_ms=1500)
    assert claimed == await stored(pg_storage, claimed)
    assert {j.deadline_at for j in claimed} == {LATER + timedelta(milliseconds=700), None}
    done = await pg_storage.complete(
        [CompleteItem(id=claimed[0].id, result={"ok": [1, 2]}, lease_token=claimed[0].lease_token)]
        + [CompleteItem(id=j.id) for j in claimed[1:]],
        LATER,
    )
    assert [o.outcome for o in done] == ["ok"] * 5
    assert [o.job for o in done] == await stored(pg_storage, claimed)
    assert done[0].job is not None and done[0].job.result == {"ok": [1, 2]}
    assert len(pg_storage._cache) == 0


async def test_another_storage_gets_whole_rows(pg_url: str, pg_storage: PostgresStorage) -> None:
    other = PostgresStorage(pg_url)
    await other.open()
    try:
        jobs = make_jobs(4)
        await pg_storage.insert_jobs(jobs, NOW)
        claimed = await other.claim("q", 2, LATER, consumer_id=None, lease_ms=1000)
        assert claimed == await stored(other, claimed)
        # acked by the inserting storage, whose cached copy is two revisions behind
        done = await pg_storage.complete([CompleteItem(id=j.id) for j in claimed], LATER)
        assert [o.job for o in done] == await stored(pg_storage, claimed)
        # and the rest claimed by the inserting storage after the other one touched them
        changed = await other.transition(
            [Change(id=jobs[2].id, expected=frozenset({"waiting"}), updates={"progress": 10})], LATER
        )
        assert changed[0].outcome == "ok"
        rest = await pg_storage.claim("q", 5, LATER, consumer_id=None, lease_ms=1000)
        assert [j.id for j in rest] == [j.id for j in jobs[2:]]
        assert rest == await stored(pg_storage, rest) and rest[0].progress == 10
    finally:
        await other.close()


async def test_rows_changed_behind_the_cache_are_read(pg_storage: PostgresStorage) -> None:
    jobs = make_jobs(3)
    await pg_storage.insert_jobs(jobs, NOW)
    # the last writer is still this storage, but the row moved on (rev bumped): the claim reads it
    await sql(pg_storage, "UPDATE JOBS SET data = '{\"changed\": true}', rev = rev + 1 WHERE id = $1", jobs[1].id)
    claimed = await pg_storage.claim("q", 3, LATER, consumer_id=None, lease_ms=1000)
    assert claimed[1].data == {"changed": True}
    assert claimed == await stored(pg_storage, claimed)
    await sql(pg_storage, "UPDATE JOBS SET progress = 55, rev = rev + 1 WHERE id = $1", jobs[2].id)
    done = await pg_storage.complete([CompleteItem(id=j.id) for j in claimed], LATER)
    assert done[2].job is not None and done[2].job.progress == 55
    assert [o.job for o in done] == await stored(pg_storage, claimed)


async def test_callers_cannot_change_the_cached_copies(pg_storage: PostgresStorage) -> None:
    jobs = make_jobs(1)
    await pg_storage.insert_jobs(jobs, NOW)
    jobs[0].data = {"mutated": "after insert"}
    (claimed,) = await pg_storage.claim("q", 1, LATER, consumer_id=None, lease_ms=1000)
    assert claimed.data == {"i": 0}
    claimed.data = {"mutated": "after claim"}
    (done,) = await pg_storage.complete([CompleteItem(id=claimed.id)], LATER)
    assert done.job is not None and done.job.data == {"i": 0}


def test_row_cache_is_bounded_by_generations() -> None:
    cache = RowCache(generation=3)
    jobs = make_jobs(7)
    for job in jobs:
        cache.put(job.id, 0, job)
    assert len(cache) <= 6
    assert cache.get(jobs[0].id) is None and cache.get(jobs[6].id) == (0, jobs[6])
    assert cache.pop(jobs[5].id) == (0, jobs[5]) and cache.get(jobs[5].id) is None
