"""The pytest plugin's own fixtures: fresh stores per call, reopen by URL, engines and the manual clock."""

from __future__ import annotations

from typing import Any

import pytest

from rustqueue_core.clock import ManualClock
from rustqueue_core.storage import JobFilter
from rustqueue_core.testing import StorageFactory
from rustqueue_core.testing.jobs import T0, make_job


async def test_storage_factory_gives_fresh_empty_stores(storage_factory: StorageFactory, storage_url: str) -> None:
    first = await storage_factory()
    await first.insert_jobs([make_job()], T0)
    second = await storage_factory()
    assert (await second.find_jobs(JobFilter(), 10))[0] == []
    assert storage_url == storage_factory.url
    assert storage_factory.spec.schemes


async def test_storage_factory_reopens_a_url(storage_factory: StorageFactory, storage_url: str) -> None:
    store = await storage_factory()
    job = make_job()
    await store.insert_jobs([job], T0)
    if not (store.capabilities.durable or store.capabilities.write_back):
        return  # nothing to reopen on a volatile backend
    await store.close()
    again = await storage_factory(storage_url)
    assert await again.get_jobs([job.id]) == [job]


async def test_rq_runs_on_the_manual_clock(rq: Any, manual_clock: ManualClock) -> None:
    assert rq.clock is manual_clock
    job_id = await rq.push("emails", "send", {"to": "a@b.c"}, delay_ms=5_000)
    assert await rq.claim("emails") == []
    manual_clock.advance(6)
    await rq.tick()
    (job,) = await rq.claim("emails")
    assert job.id == job_id
    await rq.ack(job_id, {"sent": True})
    assert (await rq.get_job(job_id)).state == "completed"


async def test_engine_factory_builds_more_engines(engine_factory: Any) -> None:
    a = await engine_factory()
    b = await engine_factory(start=False)
    assert a.state == "ready" and b.state == "starting"
    await b.start()
    assert b.state == "ready"


@pytest.mark.rustqueue_storage("sqlite")
async def test_backend_marker_runs_only_on_its_backend(storage_url: str) -> None:
    assert storage_url.startswith("sqlite:")
