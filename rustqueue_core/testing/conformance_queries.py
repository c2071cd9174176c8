"""Query-side storage contract: filters, paging, flows and children, retention, schedules."""

from __future__ import annotations

from typing import Any

import pytest

from rustqueue_core.models import Job
from rustqueue_core.storage import InsertConflict, JobFilter
from rustqueue_core.testing.jobs import T0, at, make_job, make_schedule


async def _all_pages(storage: Any, job_filter: JobFilter, page: int) -> list[Job]:
    seen: list[Job] = []
    cursor: str | None = None
    for _ in range(1_000):
        jobs, cursor = await storage.find_jobs(job_filter, page, cursor)
        seen.extend(jobs)
        if cursor is None:
            return seen
    raise AssertionError("paging did not terminate")


class StorageQueryConformance:
    """Filters, paging, children lookup, retention and schedules. Part of ``StorageConformance``."""

    pytestmark = [pytest.mark.asyncio]

    async def _seed(self, storage: Any) -> dict[str, Job]:
        jobs = {
            "w1": make_job("q", 5, tags=["red", "big"], flow_id="f1", group_id="g1"),
            "w2": make_job("q", 3, tags=["red"], flow_id="f1", unique_key="u"),
            "d1": make_job("q", 4, state="delayed", delay_until=at(10), flow_id="f2"),
            "c1": make_job("q", 1, state="completed", completed_at=at(1), updated_at=at(1)),
            "x1": make_job("other", 2, tags=["big"], group_id="g1"),
        }
        await storage.insert_jobs(list(jobs.values()), T0)
        return jobs

    async def test_find_jobs_filters(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        jobs = await self._seed(storage)

        async def ids(**kw: Any) -> set[str]:
            found, _ = await storage.find_jobs(JobFilter(**kw), 100)
            return {j.id for j in found}

        def of(*names: str) -> set[str]:
            return {jobs[n].id for n in names}

        assert await ids() == of("w1", "w2", "d1", "c1", "x1")
        assert await ids(ids=[jobs["w1"].id, "missing"]) == of("w1")
        assert await ids(ids=[]) == set()
        assert await ids(queue="other") == of("x1")
        assert await ids(queues=["q", "other"], states=["waiting"]) == of("w1", "w2", "x1")
        assert await ids(states=["delayed", "completed"]) == of("d1", "c1")
        assert await ids(flow_id="f1") == of("w1", "w2")
        assert await ids(group_id="g1", queue="q") == of("w1")
        assert await ids(tags=["red"]) == of("w1", "w2")
        assert await ids(tags=["red", "big"]) == of("w1")
        assert await ids(unique_key="u", queue="q") == of("w2")
        assert await ids(delay_until_lte=at(10)) == of("d1")
        assert await ids(delay_until_lte=at(9)) == set()
        assert await ids(completed_before=at(2), states=["completed"]) == of("c1")
        assert await ids(completed_before=at(1)) == set()
        assert await ids(updated_before=at(1)) == of("w1", "w2", "d1", "x1")

    async def test_find_jobs_time_bounds_on_active_jobs(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        short = make_job(rank=1, timeout_ms=1_000)
        long = make_job(rank=2)
        await storage.insert_jobs([short, long, make_job(rank=3, expires_at=at(5))], T0)
        await storage.claim("q", 1, T0, consumer_id=None, lease_ms=1_000)
        await storage.claim("q", 1, T0, consumer_id=None, lease_ms=60_000)

        async def ids(**kw: Any) -> set[str]:
            found, _ = await storage.find_jobs(JobFilter(**kw), 100)
            return {j.id for j in found}

        assert await ids(states=["active"], lease_expires_before=at(2)) == {short.id}
        assert await ids(states=["active"], lease_expires_before=at(1)) == set()
        assert await ids(states=["active"], deadline_before=at(1.5)) == {short.id}
        assert len(await ids(expires_at_lte=at(5))) == 1
        assert await ids(expires_at_lte=at(4)) == set()

    @pytest.mark.parametrize("order", ["id", "sort_key", "updated_desc"])
    async def test_paging_visits_every_match_once_in_order(self, storage_factory: Any, order: str) -> None:
        storage = await storage_factory()
        jobs = [make_job("q", (i * 7) % 23, updated_at=at(i % 5)) for i in range(23)]
        await storage.insert_jobs(jobs, T0)
        seen = await _all_pages(storage, JobFilter(queue="q", order=order), 4)
        assert sorted(j.id for j in seen) == sorted(j.id for j in jobs)
        if order == "id":
            assert [j.id for j in seen] == sorted(j.id for j in jobs)
        elif order == "sort_key":
            assert [j.sort_key for j in seen] == sorted(j.sort_key for j in jobs)
        else:
            keys = [(j.updated_at, j.id) for j in seen]
            assert keys == sorted(keys, reverse=True)
        first, cursor = await storage.find_jobs(JobFilter(queue="q", order=order), 23)
        assert len(first) == 23 and cursor is None
        assert await storage.find_jobs(JobFilter(queue="q"), 0) == ([], None)

    async def test_children_of_lookup_and_flow(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        parent = make_job("a", 1, flow_id="flow")
        other = make_job("a", 2, flow_id="flow")
        child = make_job("b", 3, state="blocked", depends_on=[parent.id, other.id], flow_id="flow")
        grandchild = make_job("c", 4, state="blocked", depends_on=[child.id], flow_id="flow")
        await storage.insert_jobs([parent, other, child, grandchild], T0)

        async def ids(**kw: Any) -> list[str]:
            found, _ = await storage.find_jobs(JobFilter(**kw), 100)
            return sorted(j.id for j in found)

        assert await ids(children_of=[parent.id]) == [child.id]
        assert await ids(children_of=[parent.id, child.id]) == sorted([child.id, grandchild.id])
        assert await ids(children_of=[grandchild.id]) == []
        assert await ids(flow_id="flow") == sorted(j.id for j in (parent, other, child, grandchild))
        # the relation survives the parent's deletion, so dependents can still be found and repaired
        await storage.delete_jobs([parent.id])
        assert await ids(children_of=[parent.id]) == [child.id]

    async def test_retention_filters_respect_blocked_children(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        old_done = make_job("q", 1, state="completed", completed_at=at(1), updated_at=at(1))
        old_parent = make_job("q", 2, state="completed", completed_at=at(1), updated_at=at(1))
        blocked = make_job("q", 3, state="blocked", depends_on=[old_parent.id])
        recent = make_job("q", 4, state="completed", completed_at=at(100), updated_at=at(100))
        old_dlq = make_job("q", 5, state="dlq", updated_at=at(1))
        new_dlq = make_job("q", 6, state="dlq", updated_at=at(100))
        old_cancelled = make_job("q", 7, state="cancelled", updated_at=at(1))
        old_waiting = make_job("q", 8, updated_at=at(1))
        await storage.insert_jobs(
            [old_done, old_parent, blocked, recent, old_dlq, new_dlq, old_cancelled, old_waiting], T0
        )
        deleted = await storage.delete_jobs(
            filter=JobFilter(states=["completed"], completed_before=at(50), without_blocked_children=True)
        )
        assert [j.id for j in deleted] == [old_done.id]
        deleted = await storage.delete_jobs(filter=JobFilter(states=["dlq", "cancelled"], updated_before=at(50)))
        assert sorted(j.id for j in deleted) == sorted([old_dlq.id, old_cancelled.id])
        left = await storage.get_jobs([old_parent.id, recent.id, new_dlq.id, old_waiting.id, blocked.id])
        assert all(j is not None for j in left)
        assert await storage.delete_jobs(filter=JobFilter(states=["dlq"], updated_before=at(50))) == []

    async def test_delete_by_filter_honours_limit(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        jobs = [make_job("q", i, state="completed", completed_at=at(1)) for i in range(5)]
        await storage.insert_jobs(jobs, T0)
        first = await storage.delete_jobs(filter=JobFilter(states=["completed"]), limit=3)
        assert len(first) == 3
        rest = await storage.delete_jobs(filter=JobFilter(states=["completed"]), limit=3)
        assert len(rest) == 2
        assert await storage.count_jobs() == {} or all(c.total == 0 for c in (await storage.count_jobs()).values())

    # ------------------------------------------------------------------ schedules
    async def test_schedule_crud(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        b = make_schedule("b", next_run_at=at(60), job_data={"x": 1})
        a = make_schedule("a", cron_expr="* * * * *", every_ms=None, paused=True, timezone="Europe/Berlin")
        await storage.put_schedule(b)
        await storage.put_schedule(a)
        assert await storage.get_schedule("b") == b
        assert await storage.get_schedule("missing") is None
        assert [s.name for s in await storage.list_schedules()] == ["a", "b"]
        assert [s.name for s in await storage.list_schedules(active_only=True)] == ["b"]
        changed = make_schedule("b", next_run_at=at(120), execution_count=4)
        await storage.put_schedule(changed)
        assert await storage.get_schedule("b") == changed
        assert await storage.delete_schedule("b") is True
        assert await storage.delete_schedule("b") is False
        assert [s.name for s in await storage.list_schedules()] == ["a"]

    async def test_fire_schedule_fires_each_slot_once(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.put_schedule(make_schedule("s", next_run_at=None))
        job = make_job("q", 1)
        updates = {"next_run_at": at(60), "execution_count": 1, "last_run_at": T0}
        assert await storage.fire_schedule("s", None, updates, [job], T0) is True
        second = make_job("q", 2)
        assert await storage.fire_schedule("s", None, updates, [second], T0) is False
        assert await storage.get_jobs([job.id, second.id]) == [job, None]
        got = await storage.get_schedule("s")
        assert got is not None and (got.next_run_at, got.execution_count, got.last_run_at) == (at(60), 1, T0)
        assert await storage.fire_schedule("missing", None, updates, [], T0) is False
        later = {"next_run_at": at(120), "execution_count": 2}
        assert await storage.fire_schedule("s", at(60), later, [], at(60)) is True

    async def test_fire_schedule_with_a_held_key_writes_nothing(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        schedule = make_schedule("s", next_run_at=at(10))
        await storage.put_schedule(schedule)
        holder = make_job("q", 1, unique_key="k")
        await storage.insert_jobs([holder], T0)
        with pytest.raises(InsertConflict):
            await storage.fire_schedule(
                "s", at(10), {"next_run_at": at(70)}, [make_job("q", 2, unique_key="k")], at(10)
            )
        assert await storage.get_schedule("s") == schedule
