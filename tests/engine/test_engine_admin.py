"""Unique keys, dedup, queue admin, inspection, stats (SEMANTICS §2.12, §2.16, §4)."""

from __future__ import annotations

from typing import Any

import pytest

from rustqueue_core.errors import (
    DuplicateKey,
    InvalidState,
    JobNotFound,
    QueueExists,
    QueueNotFound,
    ValidationError,
)


async def test_unique_key_lifecycle(rq: Any) -> None:
    holder = await rq.push("q", "j", unique_key="k", backoff_delay_ms=0)
    with pytest.raises(DuplicateKey) as info:
        await rq.push("q", "j", unique_key="k")
    assert info.value.existing_id == holder
    assert await rq.push("other", "j", unique_key="k")
    await rq.claim("q")
    await rq.fail(holder, "retry keeps the key")
    with pytest.raises(DuplicateKey):
        await rq.push("q", "j", unique_key="k")
    await rq.claim("q")
    await rq.ack(holder)
    second = await rq.push("q", "j", unique_key="k")
    await rq.claim("q")
    await rq.fail(second, "x", dead=True)
    third = await rq.push("q", "j", unique_key="k")
    await rq.cancel(third)
    assert await rq.push("q", "j", unique_key="k")


async def test_content_dedup(rq: Any) -> None:
    await rq.create_queue("q", allow_duplicates=False)
    first = await rq.push("q", "j", {"a": 1, "b": 2})
    with pytest.raises(DuplicateKey) as info:
        await rq.push("q", "j", {"b": 2, "a": 1})
    assert info.value.existing_id == first
    assert await rq.push("q", "j", {"a": 2})
    assert (await rq.get_job(first)).unique_key.startswith("content:")


async def test_queue_create_configure(rq: Any) -> None:
    config = await rq.create_queue("q", ordering="priority", lease_ms=5000)
    assert config.ordering == "max_first" and config.lease_ms == 5000
    with pytest.raises(QueueExists):
        await rq.create_queue("q")
    await rq.push("jobs-only", "j")
    with pytest.raises(QueueExists):
        await rq.create_queue("jobs-only")
    updated = await rq.configure_queue("jobs-only", group_concurrency=2)
    assert updated.group_concurrency == 2
    with pytest.raises(InvalidState):
        await rq.configure_queue("jobs-only", ordering="fifo")
    with pytest.raises(ValidationError):
        await rq.configure_queue("q", ordering="fair")
    with pytest.raises(ValidationError):
        await rq.configure_queue("q", rate_limit_per_second=float("inf"))
    job = (await rq.claim("q") or [None])[0]
    assert job is None
    await rq.push("q", "j")
    assert (await rq.claim("q"))[0].lease_ms == 5000


async def test_rename_queue(rq: Any) -> None:
    await rq.create_queue("old", lease_ms=7000)
    active = await rq.push("old", "a", unique_key="k")
    waiting = await rq.push("old", "w")
    job = (await rq.claim("old"))[0]
    assert job.id == active
    assert await rq.rename_queue("old", "new") == 2
    with pytest.raises(QueueNotFound):
        await rq.rename_queue("old", "x")
    await rq.push("other", "x")
    with pytest.raises(QueueExists):
        await rq.rename_queue("new", "other")
    assert (await rq.get_job(waiting)).queue == "new"
    assert (await rq.get_queue_config("new")).lease_ms == 7000
    with pytest.raises(DuplicateKey):
        await rq.push("new", "a", unique_key="k")
    await rq.ack(active, token=job.lease_token)
    assert [j.id for j in await rq.claim("new")] == [waiting]


async def test_purge_and_delete(rq: Any) -> None:
    await rq.create_queue("q")
    active = await rq.push("q", "a")
    await rq.claim("q")
    parent = await rq.push("q", "p")
    child = await rq.push("r", "c", depends_on=[parent])
    await rq.push("q", "d", delay_ms=1000)
    assert await rq.purge_queue("q") == 2
    assert (await rq.get_job(child)).state == "dlq"
    assert (await rq.get_job(active)).state == "active"
    assert (await rq.get_queue_config("q")).name == "q"
    with pytest.raises(QueueNotFound):
        await rq.purge_queue("missing")
    assert await rq.delete_queue("q") == 1
    with pytest.raises(JobNotFound):
        await rq.ack(active)
    assert "q" not in [q.name for q in await rq.queues()]


async def test_purge_all_delete_all(rq: Any) -> None:
    await rq.push("a", "x")
    await rq.push("b", "x")
    await rq.claim("b")
    assert await rq.purge_all() == 1
    assert await rq.delete_all() == 1
    assert await rq.queues() == []


async def test_retry_promote_delete(rq: Any) -> None:
    dead = await rq.push("q", "d", max_attempts=1)
    await rq.claim("q")
    await rq.fail(dead, "x")
    result = await rq.retry([dead, "01900000-0000-7000-8000-000000000000"])
    assert (result.ok, result.failed) == (1, 1)
    job = await rq.get_job(dead)
    assert job.state == "waiting" and job.attempt == 0
    later = await rq.push("q", "l", delay_ms=100_000)
    assert (await rq.promote(later)).ok == 1
    assert (await rq.get_job(later)).state == "waiting"
    assert await rq.delete_jobs([later, dead]) == 2
    assert await rq.get_jobs([later]) == [None]


async def test_list_jobs_paging(rq: Any) -> None:
    ids = await rq.push_batch("q", [{"name": "a", "tags": ["t"]}] * 5)
    page, cursor = await rq.list_jobs("q", limit=2)
    seen = [j.id for j in page]
    while cursor is not None:
        page, cursor = await rq.list_jobs("q", limit=2, cursor=cursor)
        seen.extend(j.id for j in page)
    assert seen == sorted(ids)
    tagged, _ = await rq.list_jobs(tags=["t"], states=["waiting"], limit=50)
    assert len(tagged) == 5


async def test_stats(rq: Any, manual_clock: Any) -> None:
    await rq.push_batch("q", [{"name": "a"}] * 4)
    jobs = await rq.claim("q", 3)
    await rq.ack(jobs[0].id)
    await rq.nack(jobs[1].id)
    manual_clock.advance(1)
    [stats] = await rq.stats("q")
    c = stats.counts
    assert stats.pending + stats.locked + c.completed + c.dlq + c.cancelled == 4
    assert (stats.published, stats.claimed, stats.acked, stats.nacked) == (4, 3, 1, 1)
    assert stats.publish_rate_per_sec > 0 and stats.ack_rate_per_sec > 0


async def test_explain(rq: Any) -> None:
    parent = await rq.push("q", "p")
    child = await rq.push("q", "c", depends_on=[parent])
    codes = [e.code for e in await rq.explain(child)]
    assert "blocked_by" in codes
    later = await rq.push("q", "l", delay_ms=1000)
    assert "delayed_until" in [e.code for e in await rq.explain(later)]
    behind = await rq.push("q", "b")
    codes = [e.code for e in await rq.explain(behind)]
    assert "ahead_in_line" in codes and "no_recent_claims" in codes
    await rq.claim("q")
    assert [e.code for e in await rq.explain(parent)] == ["lease_held"]
    with pytest.raises(JobNotFound):
        await rq.explain("01900000-0000-7000-8000-000000000000")
