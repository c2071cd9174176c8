"""Claim order, consume pause, ttl, group concurrency, long-poll (SEMANTICS §2.2, §2.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rustqueue_core.errors import ValidationError


async def names(rq: Any, queue: str, n: int = 100) -> list[str]:
    return [j.name for j in await rq.claim(queue, n)]


async def test_default_order_priority_then_fifo(rq: Any, manual_clock: Any) -> None:
    await rq.push("q", "low1", priority=1)
    manual_clock.advance(0.001)
    await rq.push("q", "plain")
    manual_clock.advance(0.001)
    await rq.push("q", "high", priority=10)
    manual_clock.advance(0.001)
    await rq.push("q", "low2", priority=1)
    assert await names(rq, "q") == ["high", "low1", "low2", "plain"]


async def test_claim_sets_delivery_fields(rq: Any, manual_clock: Any) -> None:
    await rq.push("q", "j", timeout_ms=500)
    job = (await rq.claim("q", consumer_id="c1", lease_ms=2000))[0]
    assert job.state == "active" and job.started_at == manual_clock.now()
    assert job.worker_id == "c1" and job.deliveries == 1 and job.lease_ms == 2000
    assert len(job.lease_token) >= 32
    assert (job.lease_expires_at - manual_clock.now()).total_seconds() == 2
    assert (job.deadline_at - manual_clock.now()).total_seconds() == 0.5


async def test_claim_counts(rq: Any) -> None:
    assert await rq.claim("nothing") == []
    await rq.push_batch("q", [{"name": "a"}] * 3)
    assert await rq.claim("q", 0) == []
    with pytest.raises(ValidationError):
        await rq.claim("q", -1)
    assert len(await rq.claim("q", 5)) == 3
    assert await rq.claim("q", 5) == []


async def test_min_first_and_text_orders(rq: Any) -> None:
    await rq.create_queue("min", ordering="min_first")
    for p in (5, 1, 3):
        await rq.push("min", f"p{p}", priority=p)
    assert await names(rq, "min") == ["p1", "p3", "p5"]
    await rq.create_queue("text", priority_kind="text")
    for p in ("a", "b", "ab"):
        await rq.push("text", f"t{p}", priority=p)
    assert await names(rq, "text") == ["tb", "tab", "ta"]


async def test_fifo_and_lifo(rq: Any, manual_clock: Any) -> None:
    await rq.create_queue("fifo", ordering="fifo")
    await rq.create_queue("lifo", ordering="Lifo")
    for i, p in enumerate((1, 9, 5)):
        await rq.push("fifo", f"f{i}", priority=p)
        await rq.push("lifo", f"l{i}", priority=p)
        manual_clock.advance(0.001)
    assert await names(rq, "fifo") == ["f0", "f1", "f2"]
    assert await names(rq, "lifo") == ["l2", "l1", "l0"]


async def test_lifo_job_jumps_its_level(rq: Any, manual_clock: Any) -> None:
    await rq.push("q", "old")
    manual_clock.advance(0.001)
    await rq.push("q", "young")
    manual_clock.advance(0.001)
    await rq.push("q", "jumper", lifo=True)
    await rq.push("q", "urgent", priority=5)
    assert await names(rq, "q") == ["urgent", "jumper", "old", "young"]


async def test_equal_created_at_orders_by_id_and_retry_keeps_place(rq: Any, manual_clock: Any) -> None:
    ids = await rq.push_batch("q", [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    first = (await rq.claim("q"))[0]
    assert first.id == ids[0]
    manual_clock.advance(1)
    await rq.push("q", "newer")
    await rq.fail(first.id, "x", retry_delay_ms=0)
    assert await names(rq, "q") == ["a", "b", "c", "newer"]


async def test_pause_and_consume_pause(rq: Any) -> None:
    await rq.push("q", "j")
    await rq.pause_queue("q", consume=True)
    assert await rq.claim("q") == []
    await rq.resume_queue("q")
    assert len(await rq.claim("q")) == 1


async def test_ttl_expired_never_claimed(rq: Any, manual_clock: Any) -> None:
    await rq.push("q", "short", ttl_ms=1000)
    manual_clock.advance(1)
    assert await rq.claim("q") == []
    await rq.tick()
    dead = await rq.dlq("q")
    assert dead[0].last_error == "job expired (ttl_ms exceeded)"


async def test_group_concurrency(rq: Any, manual_clock: Any) -> None:
    await rq.create_queue("q", group_concurrency=1)
    await rq.push("q", "g1", group_id="g")
    manual_clock.advance(0.001)
    await rq.push("q", "g2", group_id="g")
    manual_clock.advance(0.001)
    await rq.push("q", "free")
    first = await rq.claim("q", 2)
    assert [j.name for j in first] == ["g1", "free"]
    assert await rq.claim("q") == []
    await rq.ack(first[0].id)
    assert [j.name for j in await rq.claim("q")] == ["g2"]


async def test_claim_wait_wakes_on_push(engine_factory: Any) -> None:
    from rustqueue_core.settings import EngineSettings

    rq = await engine_factory(settings=EngineSettings(housekeeping=False))
    loop = asyncio.get_running_loop()

    async def push_later() -> None:
        await asyncio.sleep(0.1)
        await rq.push("q", "late")

    started = loop.time()
    task = asyncio.create_task(push_later())
    jobs = await asyncio.wait_for(rq.claim("q", wait=5), timeout=10)
    await task
    assert [j.name for j in jobs] == ["late"]
    assert loop.time() - started < 4
    assert await rq.claim("q", wait=0.05) == []


async def test_claim_wait_wakes_on_release_and_promotion(engine_factory: Any) -> None:
    from rustqueue_core.settings import EngineSettings

    rq = await engine_factory(settings=EngineSettings(housekeeping=False))
    job_id = await rq.push("q", "j")
    held = (await rq.claim("q"))[0]

    async def release_later() -> None:
        await asyncio.sleep(0.05)
        await rq.release(job_id, token=held.lease_token)

    task = asyncio.create_task(release_later())
    again = await asyncio.wait_for(rq.claim("q", wait=5), timeout=10)
    await task
    assert [j.id for j in again] == [job_id] and again[0].deliveries == 2
    later = await rq.push("q", "later", delay_ms=3_600_000)

    async def promote_later() -> None:
        await asyncio.sleep(0.05)
        await rq.promote([later])

    task = asyncio.create_task(promote_later())
    promoted = await asyncio.wait_for(rq.claim("q", wait=5), timeout=10)
    await task
    assert [j.id for j in promoted] == [later]
