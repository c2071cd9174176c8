"""Schedules: create rules, fires, max_executions, pause, DST, multi-instance (SEMANTICS §3.2, §3.3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rustqueue_core.clock import ManualClock
from rustqueue_core.errors import ScheduleNotFound, ValidationError
from rustqueue_core.scheduling import load_timezone, next_cron, normalize_cron
from rustqueue_core.settings import EngineSettings


async def test_create_echo_and_validation(rq: Any) -> None:
    schedule = await rq.create_schedule(name="s", queue="q", job_name="j", every_ms=1000)
    assert (schedule.execution_count, schedule.paused, schedule.next_run_at) == (0, False, None)
    bad = [
        {"cron_expr": "not cron"},
        {"cron_expr": "* * * * * *"},
        {"cron_expr": "* * * * *", "every_ms": 5},
        {},
        {"cron_expr": "* * * * *", "timezone": "Mars/Base"},
        {"every_ms": 0},
    ]
    for extra in bad:
        with pytest.raises(ValidationError):
            await rq.create_schedule(name="b", queue="q", job_name="j", **extra)
    with pytest.raises(ValidationError, match="Schedule must have cron_expr or every_ms"):
        await rq.create_schedule(name="b", queue="q", job_name="j")
    with pytest.raises(ValidationError):
        await rq.create_schedule(name="bad name", queue="q", job_name="j", every_ms=5)
    assert [s.name for s in await rq.list_schedules()] == ["s"]


async def test_interval_fires(rq: Any, manual_clock: Any) -> None:
    await rq.create_schedule(name="s", queue="q", job_name="tick", every_ms=200, job_data={"n": 1})
    for _ in range(14):
        await rq.tick()
        manual_clock.advance(0.05)
    jobs = await rq.claim("q", 100)
    assert len(jobs) >= 2
    assert {(j.queue, j.name) for j in jobs} == {("q", "tick")}
    assert jobs[0].data == {"n": 1}


async def test_cron_first_tick_and_run_immediately_false(rq: Any, manual_clock: Any) -> None:
    await rq.create_schedule(name="now", queue="q", job_name="j", cron_expr="* * * * *")
    later = await rq.create_schedule(
        name="later", queue="r", job_name="j", cron_expr="0 * * * *", run_immediately=False
    )
    assert later.next_run_at == datetime(2026, 1, 1, 1, tzinfo=UTC)
    await rq.tick()
    assert (await rq.counts("q")).waiting == 1 and (await rq.counts("r")).waiting == 0
    fired = await rq.get_schedule("now")
    assert fired.next_run_at > manual_clock.now() and fired.execution_count == 1
    await rq.tick()
    assert (await rq.counts("q")).waiting == 1


async def test_max_executions_pause_resume_delete(rq: Any, manual_clock: Any) -> None:
    await rq.create_schedule(name="s", queue="q", job_name="j", every_ms=1000, max_executions=3)
    for _ in range(6):
        await rq.tick()
        manual_clock.advance(1)
    assert (await rq.counts("q")).waiting == 3
    schedule = await rq.get_schedule("s")
    assert schedule.paused and schedule.execution_count == 3
    await rq.create_schedule(name="p", queue="q2", job_name="j", every_ms=1000)
    await rq.pause_schedule("p")
    await rq.tick()
    assert (await rq.counts("q2")).waiting == 0
    await rq.resume_schedule("p")
    await rq.tick()
    assert (await rq.counts("q2")).waiting == 1
    assert await rq.delete_schedule("p")
    assert not await rq.delete_schedule("p")
    for op in (rq.get_schedule, rq.pause_schedule, rq.resume_schedule):
        with pytest.raises(ScheduleNotFound):
            await op("p")


async def test_paused_queue_uses_slot(rq: Any, manual_clock: Any) -> None:
    await rq.pause_queue("q")
    await rq.create_schedule(name="s", queue="q", job_name="j", every_ms=1000)
    await rq.tick()
    schedule = await rq.get_schedule("s")
    assert schedule.last_error == "QUEUE_PAUSED" and schedule.execution_count == 0
    assert schedule.next_run_at is not None and schedule.next_run_at > manual_clock.now()


async def test_upsert_keeps_state(rq: Any, manual_clock: Any) -> None:
    await rq.create_schedule(name="s", queue="q", job_name="j", every_ms=1000)
    await rq.tick()
    before = await rq.get_schedule("s")
    same = await rq.create_schedule(name="s", queue="q", job_name="j", every_ms=1000)
    assert same == before
    changed = await rq.create_schedule(name="s", queue="q", job_name="j", every_ms=5000)
    assert changed.execution_count == 1 and changed.last_run_at == before.last_run_at
    assert changed.next_run_at == before.last_run_at + timedelta(seconds=5)


def test_berlin_dst() -> None:
    tz = load_timezone("Europe/Berlin")
    expr = normalize_cron("0 9 * * *")
    fires = []
    at = datetime(2026, 3, 27, tzinfo=UTC)
    for _ in range(4):
        at = next_cron(expr, tz, at)
        fires.append(at)
    assert [f.astimezone(ZoneInfo("Europe/Berlin")).hour for f in fires] == [9, 9, 9, 9]
    assert fires[1].hour == 8 and fires[2].hour == 7  # CET → CEST on 29 March
    skipped = normalize_cron("30 2 * * *")
    spring = next_cron(skipped, tz, datetime(2026, 3, 29, tzinfo=UTC))
    assert spring == datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00 CEST, the first instant after the jump
    autumn = next_cron(skipped, tz, datetime(2026, 10, 25, tzinfo=UTC))
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert next_cron(skipped, tz, autumn) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_cron_syntax() -> None:
    for ok in ("@daily", "0 0 L * *", "0 0 * * 1#2", "0 0 ? * MON", "0 9 * * 7", "*/5 1-3 1,15 JAN-MAR *"):
        normalize_cron(ok)
    for bad in ("0 0 15W * *", "* * * * * *", "@sometimes", "61 * * * *"):
        with pytest.raises(ValidationError):
            normalize_cron(bad)


async def test_two_instances_fire_each_slot_once(storage_factory: Any, engine_factory: Any) -> None:
    clock = ManualClock()
    storage = await storage_factory()
    settings = EngineSettings(housekeeping=False)
    a = await engine_factory(clock=clock, settings=settings, storage=storage)
    b = await engine_factory(clock=clock, settings=settings, storage=storage)
    await a.create_schedule(name="s", queue="q", job_name="j", every_ms=1000)
    for _ in range(5):
        await asyncio.gather(a.tick(), b.tick())
        clock.advance(1)
    assert (await a.counts("q")).waiting == 5


async def test_embedded_housekeeping_fires(engine_factory: Any) -> None:
    rq = await engine_factory(settings=EngineSettings(tick_interval_ms=20))
    await rq.create_schedule(name="s", queue="q", job_name="j", every_ms=10_000)
    jobs = await rq.claim("q", wait=5)
    assert len(jobs) == 1
