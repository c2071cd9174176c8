"""``StorageConcurrencyConformance``: claim exclusivity and atomic uniqueness under concurrency
(checklist lines marked C), in one process and, when the backend declares ``multi_process``, across
processes.

Needs ``storage_factory``; the cross-process tests also need a ``storage_url_for_subprocess`` fixture
(the URL of a fresh, empty store another process can open) and skip with a reason without it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rustqueue_core.storage import Change, InsertConflict, JobFilter
from rustqueue_core.testing.jobs import T0, at, make_job, make_jobs, make_schedule
from rustqueue_core.testing.procs import Child, open_url


def subprocess_url(request: pytest.FixtureRequest, storage: Any, why: str) -> str:
    """The subclass's ``storage_url_for_subprocess``, or a skip with an explicit reason."""
    if not storage.capabilities.multi_process:
        pytest.skip(f"backend declares no multi_process: {why} is not claimed")
    try:
        url = request.getfixturevalue("storage_url_for_subprocess")
    except pytest.FixtureLookupError:
        url = None
    if not url:
        pytest.skip(f"no storage_url_for_subprocess fixture: {why} needs a store a subprocess can open")
    return str(url)


class StorageConcurrencyConformance:
    """Concurrency contract. Needs ``storage_factory`` (and ``storage_url_for_subprocess``)."""

    pytestmark = [pytest.mark.asyncio]

    async def test_concurrent_claimers_take_each_job_once(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        jobs = make_jobs(1_000)
        for start in range(0, len(jobs), 250):
            await storage.insert_jobs(jobs[start : start + 250], T0)
        claimed: list[str] = []

        async def claimer(worker: int) -> None:
            n = 1 + worker % 4
            while True:
                got = await storage.claim("q", n, T0, consumer_id=f"w{worker}", lease_ms=60_000)
                if not got:
                    return
                claimed.extend(j.id for j in got)
                await asyncio.sleep(0)

        await asyncio.wait_for(asyncio.gather(*(claimer(w) for w in range(8))), 60)
        assert len(claimed) == 1_000
        assert set(claimed) == {j.id for j in jobs}

    async def test_concurrent_pushes_with_one_key_store_exactly_one(self, storage_factory: Any) -> None:
        storage = await storage_factory()

        async def push(i: int) -> str | None:
            job = make_job("q", i, unique_key="the-key")
            try:
                await storage.insert_jobs([job], T0)
            except InsertConflict:
                return None
            return job.id

        results = await asyncio.wait_for(asyncio.gather(*(push(i) for i in range(50))), 60)
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        holders, _ = await storage.find_jobs(JobFilter(queue="q", unique_key="the-key"), 100)
        assert [j.id for j in holders] == winners

    async def test_concurrent_fires_of_one_slot_fire_once(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.put_schedule(make_schedule("s", next_run_at=at(60)))

        async def fire(i: int) -> bool:
            job = make_job("scheduled", i)
            fired: bool = await storage.fire_schedule(
                "s", at(60), {"next_run_at": at(120), "execution_count": 1}, [job], at(60)
            )
            return fired

        results = await asyncio.wait_for(asyncio.gather(*(fire(i) for i in range(20))), 60)
        assert results.count(True) == 1
        jobs, _ = await storage.find_jobs(JobFilter(queue="scheduled"), 100)
        assert len(jobs) == 1

    async def test_lease_expiry_is_visible_and_renew_extends_it(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.insert_jobs(make_jobs(2), T0)
        short, renewed = await storage.claim("q", 2, T0, consumer_id="w", lease_ms=1_000)
        (out,) = await storage.transition(
            [
                Change(
                    id=renewed.id,
                    expected=frozenset({"active"}),
                    lease_token=renewed.lease_token,
                    updates={"lease_expires_at": at(10), "last_heartbeat": at(0.5)},
                )
            ],
            at(0.5),
        )
        assert out.outcome == "ok"
        expired, _ = await storage.find_jobs(JobFilter(states=["active"], lease_expires_before=at(2)), 100)
        assert [j.id for j in expired] == [short.id]
        # an expired lease is not re-claimable by storage alone: recovery is the engine's compare-and-set
        assert await storage.claim("q", 5, at(2), consumer_id="w2", lease_ms=1_000) == []

    async def test_two_processes_never_claim_the_same_job(
        self, storage_factory: Any, request: pytest.FixtureRequest
    ) -> None:
        probe = await storage_factory()
        url = subprocess_url(request, probe, "claims across processes")
        store = await open_url(url)
        jobs = make_jobs(1_500)
        try:
            for start in range(0, len(jobs), 500):
                await store.insert_jobs(jobs[start : start + 500], T0)
        finally:
            await store.close()
        children = [Child(url, "claim", "q", "3"), Child(url, "claim", "q", "3")]
        await asyncio.gather(*(c.start() for c in children))
        codes = await asyncio.gather(*(c.finish(within_s=120) for c in children))
        assert codes == [0, 0], [c.stderr for c in children]
        per_child = [[w[0] for w in c.words("claimed")] for c in children]
        both = per_child[0] + per_child[1]
        assert len(both) == len(set(both)), "a job was handed to two processes"
        assert set(both) == {j.id for j in jobs}

    async def test_processes_firing_one_schedule_slot_fire_it_once(
        self, storage_factory: Any, request: pytest.FixtureRequest
    ) -> None:
        probe = await storage_factory()
        url = subprocess_url(request, probe, "once-per-slot schedules across processes")
        store = await open_url(url)
        try:
            await store.put_schedule(make_schedule("nightly", next_run_at=None))
        finally:
            await store.close()
        children = [Child(url, "fire", "nightly", "10") for _ in range(2)]
        await asyncio.gather(*(c.start() for c in children))
        codes = await asyncio.gather(*(c.finish(within_s=120) for c in children))
        assert codes == [0, 0], [c.stderr for c in children]
        winners = [w[0] for c in children for w in c.words("fired")]
        assert len(winners) == 1
        store = await open_url(url)
        try:
            jobs, _ = await store.find_jobs(JobFilter(queue="scheduled"), 100)
            assert [j.id for j in jobs] == winners
        finally:
            await store.close()

    async def test_processes_racing_on_one_unique_key_store_exactly_one(
        self, storage_factory: Any, request: pytest.FixtureRequest
    ) -> None:
        probe = await storage_factory()
        url = subprocess_url(request, probe, "unique keys across processes")
        children = [Child(url, "unique", "q", "shared", "25") for _ in range(2)]
        await asyncio.gather(*(c.start() for c in children))
        codes = await asyncio.gather(*(c.finish(within_s=120) for c in children))
        assert codes == [0, 0], [c.stderr for c in children]
        winners = [w[0] for c in children for w in c.words("ok")]
        assert len(winners) == 1
        assert sum(len(c.words("conflict")) for c in children) == 49
