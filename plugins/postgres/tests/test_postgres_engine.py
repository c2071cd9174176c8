"""Two engines on one PostgreSQL schema (as two nodes would be): wake-ups reach the other engine's
long-polling claim, and each schedule slot fires once in total."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from rustqueue_postgres.storage import PostgresStorage

from rustqueue_core.clock import ManualClock
from rustqueue_core.engine import RustQueue
from rustqueue_core.settings import EngineSettings

EngineMaker = Callable[..., Awaitable[Any]]


@pytest_asyncio.fixture
async def make_engine(pg_url: str) -> AsyncIterator[EngineMaker]:
    engines: list[Any] = []

    async def make(clock: Any = None) -> Any:
        engine = RustQueue(PostgresStorage(pg_url), settings=EngineSettings(housekeeping=False), clock=clock)
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close(grace=1.0)


async def test_a_push_on_one_node_wakes_a_long_poll_on_another(make_engine: EngineMaker) -> None:
    consumer, producer = await make_engine(), await make_engine()
    started = time.monotonic()
    claim = asyncio.create_task(consumer.claim("mail", wait=20))
    await asyncio.sleep(0.3)
    assert not claim.done()
    job_id = await producer.push("mail", "send", {"to": "a@b.c"})
    (job,) = await asyncio.wait_for(claim, timeout=20)
    assert job.id == job_id and job.state == "active"
    assert time.monotonic() - started < 15  # woken, not timed out


async def test_each_schedule_slot_fires_once_across_nodes(make_engine: EngineMaker) -> None:
    clock_a, clock_b = ManualClock(), ManualClock()
    node_a, node_b = await make_engine(clock_a), await make_engine(clock_b)
    await node_a.create_schedule(name="report", queue="reports", job_name="build", every_ms=60_000)
    for _ in range(3):
        await asyncio.gather(node_a.tick(), node_b.tick())
    assert (await node_a.counts("reports")).waiting == 1
    clock_a.advance(60)
    clock_b.advance(60)
    await asyncio.gather(node_b.tick(), node_a.tick())
    await asyncio.gather(node_a.tick(), node_b.tick())
    assert (await node_b.counts("reports")).waiting == 2
    assert (await node_b.get_schedule("report")).execution_count == 2
