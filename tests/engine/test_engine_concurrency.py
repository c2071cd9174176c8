"""Concurrent callers on one engine and on two engines over one store (SEMANTICS §2.4 rule 4, §2.12)."""

from __future__ import annotations

import asyncio
from typing import Any

from rustqueue_core.errors import DuplicateKey
from rustqueue_core.models import QueueConfig
from rustqueue_core.settings import EngineSettings


async def test_concurrent_claimers_take_each_job_once(engine_factory: Any) -> None:
    rq = await engine_factory(settings=EngineSettings(housekeeping=False))
    for _ in range(10):
        await rq.push_batch("q", [{"name": "j"}] * 100)
    seen: list[str] = []

    async def claimer() -> None:
        while True:
            jobs = await rq.claim("q", 7)
            if not jobs:
                return
            seen.extend(j.id for j in jobs)
            await rq.ack_batch([j.id for j in jobs])

    await asyncio.gather(*(claimer() for _ in range(8)))
    assert len(seen) == 1000 and len(set(seen)) == 1000
    assert (await rq.counts("q")).completed == 1000


async def test_concurrent_pushes_with_one_key_store_one(storage_factory: Any, engine_factory: Any) -> None:
    storage = await storage_factory()
    settings = EngineSettings(housekeeping=False)
    engines = [await engine_factory(settings=settings, storage=storage) for _ in range(2)]

    async def push(i: int) -> str | None:
        try:
            return await engines[i % 2].push("q", "j", unique_key="one")
        except DuplicateKey:
            return None

    results = await asyncio.gather(*(push(i) for i in range(50)))
    assert sum(r is not None for r in results) == 1
    assert (await engines[0].counts("q")).waiting == 1


async def test_two_parents_acked_concurrently_unblock_once(rq: Any) -> None:
    a = await rq.push("q", "a")
    b = await rq.push("q", "b")
    child = await rq.push("c", "child", depends_on=[a, b])
    unblocked: list[str] = []
    rq.add_listener(lambda events: unblocked.extend(e.job_id for e in events if e.kind == "job.unblocked"))
    jobs = await rq.claim("q", 2)
    await asyncio.gather(*(rq.ack(j.id) for j in jobs))
    assert unblocked == [child]
    assert (await rq.get_job(child)).state == "waiting"


async def test_config_file_queues_override_stored(storage_factory: Any, engine_factory: Any) -> None:
    storage = await storage_factory()
    first = await engine_factory(settings=EngineSettings(housekeeping=False), storage=storage)
    await first.create_queue("q", lease_ms=1000, paused=True)
    configured = EngineSettings(housekeeping=False, queues=(QueueConfig(name="q", lease_ms=5000),))
    second = await engine_factory(settings=configured, storage=storage)
    config = await second.get_queue_config("q")
    assert config.lease_ms == 5000 and config.paused  # only the keys the file sets


async def test_pause_survives_restart(storage_factory: Any, engine_factory: Any) -> None:
    storage = await storage_factory()
    settings = EngineSettings(housekeeping=False)
    first = await engine_factory(settings=settings, storage=storage)
    await first.pause_queue("q")
    second = await engine_factory(settings=settings, storage=storage)
    assert [q.paused for q in await second.queues()] == [True]


async def test_restart_then_ack_unblocks_children(storage_factory: Any, engine_factory: Any) -> None:
    storage = await storage_factory()
    settings = EngineSettings(housekeeping=False)
    first = await engine_factory(settings=settings, storage=storage)
    parent = await first.push("q", "p")
    child = await first.push("q", "c", depends_on=[parent])
    await first.close()
    await storage.open()
    second = await engine_factory(settings=settings, storage=storage)
    job = (await second.claim("q"))[0]
    await second.ack(job.id)
    assert (await second.get_job(child)).state == "waiting"
