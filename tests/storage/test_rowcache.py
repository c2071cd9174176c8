"""The row cache shared by the SQLite and PostgreSQL backends: revision checks and generations."""

from __future__ import annotations

from datetime import UTC, datetime

from rustqueue_core.models import Job
from rustqueue_core.rowcache import RowCache

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(n: int) -> Job:
    return Job(id=f"job-{n}", name="task", queue="q", created_at=NOW, updated_at=NOW, data={"n": n})


def test_take_returns_the_job_only_when_the_statement_was_the_one_change() -> None:
    cache = RowCache()
    cache.put("job-1", 4, job(1))
    cache.put("job-2", 4, job(2))
    taken = cache.take("job-1", 5)
    assert taken is not None and taken.data == {"n": 1}
    assert cache.take("job-2", 7) is None  # someone else updated the row in between
    assert len(cache) == 0  # both were removed either way


def test_rows_that_linger_age_out_instead_of_keeping_new_rows_out() -> None:
    cache = RowCache(generation=3)
    lingering = [job(n) for n in range(6)]  # e.g. far-off delayed jobs, never claimed
    for j in lingering:
        cache.put(j.id, 0, j)
    fresh = job(100)
    cache.put(fresh.id, 0, fresh)
    assert cache.take(fresh.id, 1) is fresh
    assert len(cache) <= 6
    assert cache.get(lingering[0].id) is None and cache.get(lingering[5].id) == (0, lingering[5])


def test_a_newer_copy_in_the_young_generation_wins_and_pop_removes_both() -> None:
    cache = RowCache(generation=2)
    first, second = job(1), job(1)
    cache.put("job-1", 1, first)
    cache.put("job-x", 1, job(9))  # the young generation is full: it becomes the old one
    cache.put("job-1", 2, second)
    assert cache.get("job-1") == (2, second)
    assert cache.pop("job-1") == (2, second)
    assert cache.get("job-1") is None
    cache.forget(["job-x"])
    assert len(cache) == 0
