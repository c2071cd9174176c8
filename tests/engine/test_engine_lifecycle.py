"""Lifecycle gate, events, memory pressure, housekeeping loop (SEMANTICS §1.9, §4.4, §4.5)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rustqueue_core.engine import RustQueue
from rustqueue_core.errors import Closed, InvalidState, NotReady, Overloaded
from rustqueue_core.memory_pressure import CRITICAL, NORMAL, PRESSURE, MemoryMonitor
from rustqueue_core.settings import EngineSettings


async def test_startup_gate_and_close(storage_factory: Any) -> None:
    storage = await storage_factory()
    rq = RustQueue(storage, settings=EngineSettings(housekeeping=False))
    assert rq.state == "starting"
    assert (await rq.health()).status == "starting"
    assert await rq.get_job("01900000-0000-7000-8000-000000000000") is None
    with pytest.raises(NotReady) as info:
        await rq.push("q", "j")
    assert info.value.retry_after_ms == 1000
    with pytest.raises(NotReady):
        await rq.claim("q")
    await rq.start()
    assert (await rq.health()).status == "ok"
    job_id = await rq.push("q", "j")
    await rq.close()
    await rq.close()
    assert rq.state == "closed"
    for call in (rq.push("q", "j"), rq.claim("q"), rq.get_job(job_id)):
        with pytest.raises(Closed):
            await call


async def test_draining_returns_no_claims(engine_factory: Any) -> None:
    rq = await engine_factory(settings=EngineSettings(housekeeping=False))
    await rq.push("q", "j")
    waiter = asyncio.create_task(rq.claim("empty", wait=5))
    await asyncio.sleep(0.01)
    rq.state = "draining"
    rq._wake_all()
    assert await asyncio.wait_for(waiter, 2) == []
    assert await rq.claim("q") == []
    rq.state = "ready"


async def test_events_once_after_commit(engine_factory: Any) -> None:
    class Host:
        has_before_push = False
        has_jobs_changed = True
        batches: list[list[str]] = []

        def jobs_changed(self, events: Any) -> None:
            self.batches.append([e.kind for e in events])

    host = Host()
    rq = await engine_factory(settings=EngineSettings(housekeeping=False), host=host)
    ids = await rq.push_batch("q", [{"name": "a"}, {"name": "b"}])
    assert host.batches == [["job.pushed", "job.pushed"]]
    with pytest.raises(InvalidState):
        await rq.ack(ids[0])
    assert len(host.batches) == 1
    await rq.claim("q", 2)
    await rq.ack_batch(ids)
    assert host.batches[-1] == ["job.completed", "job.completed"]
    job = await rq.push("q", "p")
    await rq.claim("q")
    await rq.progress(job, 5)
    await rq.fail(job, "x", dead=True)
    assert host.batches[-2:] == [["job.progress"], ["job.dlq"]]


async def test_listener_failure_is_isolated(rq: Any) -> None:
    seen: list[int] = []

    def broken(events: Any) -> None:
        raise RuntimeError("boom")

    rq.add_listener(broken)
    remove = rq.add_listener(lambda events: seen.append(len(events)))
    await rq.push("q", "j")
    remove()
    await rq.push("q", "j")
    assert seen == [1]


def test_memory_monitor_hysteresis() -> None:
    monitor = MemoryMonitor(100, threshold=0.8)
    mb = 1024 * 1024
    assert monitor.update(50 * mb)[1] == NORMAL
    assert monitor.update(85 * mb)[1] == PRESSURE
    assert monitor.update(101 * mb)[1] == CRITICAL
    assert monitor.update(97 * mb)[1] == CRITICAL
    assert monitor.update(94 * mb)[1] == PRESSURE
    assert monitor.update(77 * mb)[1] == PRESSURE
    assert monitor.update(74 * mb)[1] == NORMAL


async def test_critical_memory_rejects_pushes_only(engine_factory: Any) -> None:
    rq = await engine_factory(settings=EngineSettings(housekeeping=False, memory_limit_mb=1))
    await rq.tick()
    assert rq._memory.level == CRITICAL
    with pytest.raises(Overloaded):
        await rq.push("q", "j")
    assert (await rq.health()).memory_level == CRITICAL
    rq._memory.limit = 1 << 50
    await rq.tick()
    assert rq._memory.level == NORMAL
    job_id = await rq.push("q", "j")
    await rq.claim("q")
    await rq.ack(job_id)


async def test_housekeeping_on_by_default(engine_factory: Any) -> None:
    rq = await engine_factory(settings=EngineSettings(tick_interval_ms=20))
    job_id = await rq.push("q", "j", backoff_delay_ms=30)
    await rq.claim("q")
    await rq.fail(job_id, "x")
    jobs = await rq.claim("q", wait=5)
    assert [j.id for j in jobs] == [job_id]
    await rq.close()
    assert rq._housekeeping_task is None


async def test_three_failures_reach_dlq_on_manual_clock(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j")
    for _ in range(3):
        manual_clock.advance(3600)
        await rq.tick()
        job = (await rq.claim("q"))[0]
        await rq.fail(job.id, "again")
    assert (await rq.get_job(job_id)).state == "dlq"
