"""Leases, fencing, progress, timeouts, stall recovery, cancel (SEMANTICS §2.5, §2.8, §2.9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rustqueue_core.errors import InvalidState, LeaseLost, ValidationError


async def test_heartbeat_progress_renew(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j")
    with pytest.raises(InvalidState):
        await rq.heartbeat(job_id)
    with pytest.raises(InvalidState):
        await rq.progress(job_id, 5)
    job = (await rq.claim("q", lease_ms=1000))[0]
    manual_clock.advance(0.5)
    result = await rq.heartbeat([{"id": job_id, "token": job.lease_token}])
    assert result.ok == 1
    beat = await rq.get_job(job_id)
    assert beat.last_heartbeat == manual_clock.now()
    assert beat.lease_expires_at == manual_clock.now() + timedelta(seconds=1)
    await rq.progress(job_id, 150, "halfway")
    job = await rq.get_job(job_id)
    assert job.progress == 100 and job.logs[-1].message == "halfway"
    with pytest.raises(ValidationError):
        await rq.progress(job_id, -1)
    renewed = await rq.renew(job_id, lease_ms=60_000)
    assert renewed.lease_expires_at == manual_clock.now() + timedelta(seconds=60)
    with pytest.raises(LeaseLost):
        await rq.heartbeat(job_id, token="other")


async def test_timeout(rq: Any, manual_clock: Any) -> None:
    timed = await rq.push("q", "t", timeout_ms=10)
    untimed = await rq.push("q", "u")
    await rq.claim("q", 2, lease_ms=3_600_000)
    manual_clock.advance(0.02)
    await rq.heartbeat([timed, untimed])
    await rq.tick()
    job = await rq.get_job(timed)
    assert job.state == "delayed" and job.last_error == "job timed out" and job.attempt == 1
    manual_clock.advance(600)
    await rq.heartbeat(untimed)
    await rq.tick()
    assert (await rq.get_job(untimed)).state == "active"


async def test_stall_recovery_and_fencing(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j", backoff_delay_ms=0)
    old = (await rq.claim("q", lease_ms=1000))[0]
    manual_clock.advance(0.999)
    await rq.tick()
    assert (await rq.get_job(job_id)).state == "active"
    manual_clock.advance(0.01)
    await rq.tick()
    job = await rq.get_job(job_id)
    assert (job.state, job.attempt, job.last_error) == ("waiting", 1, "job stalled (no heartbeat)")
    assert job.last_heartbeat is None
    with pytest.raises(LeaseLost):
        await rq.ack(job_id, token=old.lease_token)
    new = (await rq.claim("q", lease_ms=1000))[0]
    assert new.last_heartbeat is None and new.deliveries == 2
    with pytest.raises(LeaseLost):
        await rq.ack(job_id, token=old.lease_token)
    await rq.ack(job_id, token=new.lease_token)


async def test_heartbeating_job_survives_three_leases(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j")
    await rq.claim("q", lease_ms=1000)
    for _ in range(9):
        manual_clock.advance(0.34)
        await rq.heartbeat(job_id)
        await rq.tick()
    assert (await rq.get_job(job_id)).state == "active"


async def test_acked_between_scan_and_update_is_left_alone(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j")
    job = (await rq.claim("q", lease_ms=1000))[0]
    manual_clock.advance(2)
    await rq.ack(job_id)
    from rustqueue_core.delivery import FailSpec

    results = await rq._apply_failures([FailSpec(job, "job stalled (no heartbeat)")], manual_clock.now())
    assert isinstance(results[0], InvalidState)
    assert (await rq.get_job(job_id)).state == "completed"


async def test_lease_survives_restart_until_expiry(storage_factory: Any, engine_factory: Any) -> None:
    from rustqueue_core.clock import ManualClock
    from rustqueue_core.settings import EngineSettings

    clock = ManualClock()
    storage = await storage_factory()
    settings = EngineSettings(housekeeping=False)
    first = await engine_factory(clock=clock, settings=settings, storage=storage)
    job_id = await first.push("q", "j")
    await first.claim("q", lease_ms=5000)
    second = await engine_factory(clock=clock, settings=settings, storage=storage)
    await second.tick()
    assert (await second.get_job(job_id)).state == "active"
    clock.advance(6)
    await second.tick()
    assert (await second.get_job(job_id)).state in ("waiting", "delayed")


async def test_consumer_id_credential(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j", backoff_delay_ms=0)
    await rq.claim("q", consumer_id="c1", lease_ms=1000)
    with pytest.raises(LeaseLost):
        await rq.ack(job_id, consumer_id="c2")
    assert (await rq.ack(job_id, consumer_id="c1")).state == "completed"
    other = await rq.push("q", "k", backoff_delay_ms=0)
    await rq.claim("q", consumer_id="c1", lease_ms=1000)
    manual_clock.advance(1.01)
    await rq.tick()
    assert (await rq.get_job(other)).state == "waiting"


async def test_cancel(rq: Any) -> None:
    events: list[Any] = []
    rq.add_listener(events.extend)
    waiting = await rq.push("q", "w", unique_key="k")
    delayed = await rq.push("q", "d", delay_ms=1000)
    parent = await rq.push("q", "p")
    child = await rq.push("q", "c", depends_on=[parent])
    grandchild = await rq.push("q", "g", depends_on=[child])
    for job_id in (waiting, delayed):
        await rq.cancel(job_id)
    await rq.cancel(parent)
    states = [j.state for j in await rq.get_jobs([waiting, delayed, parent, child, grandchild])]
    assert states == ["cancelled"] * 5
    assert (await rq.get_job(child)).last_error == f"parent job '{parent}' was cancelled"
    assert (await rq.counts("q")).cancelled == 5
    assert sum(e.kind == "job.cancelled" for e in events) == 5
    assert await rq.push("q", "w", unique_key="k")  # key freed
    active = await rq.push("q2", "a")
    await rq.claim("q2")
    with pytest.raises(InvalidState) as info:
        await rq.cancel(active)
    assert "Waiting, Delayed, or Blocked" in info.value.message
