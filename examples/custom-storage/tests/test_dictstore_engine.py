"""DictStorage behind a real engine, loaded the way an installed plugin is: by URL scheme."""

from __future__ import annotations

import asyncio

from rustqueue_dictstore import DictStorage, plugin

from rustqueue_core import Job, RustQueue


async def test_the_plugin_serves_dict_urls_to_the_builder() -> None:
    async with RustQueue.open("dict://").plugins([plugin]).housekeeping(False).build() as rq:
        assert isinstance(rq.storage, DictStorage)
        first = await rq.push("q", "n", {"i": 1})
        second = await rq.push("q", "n", {"i": 2}, depends_on=[first])
        assert (await rq.get_job(second)).state == "blocked"
        [job] = await rq.claim("q")
        assert job.id == first
        await rq.ack(first, "one", token=job.lease_token)
        assert (await rq.get_job(second)).state == "waiting"  # unblocked by the ack


async def test_a_worker_runs_on_it() -> None:
    async with RustQueue.open("dict://").plugins([plugin]).build() as rq:
        ids = await rq.push_batch("q", [{"name": "n", "data": {"i": i}} for i in range(5)])
        done = asyncio.Event()
        seen: list[int] = []

        async def handler(job: Job) -> int:
            seen.append(job.data["i"])
            if len(seen) == len(ids):
                done.set()
            return job.data["i"] * 2

        stats = await asyncio.wait_for(rq.run_worker("q", handler, concurrency=2, shutdown=done), 10)
        assert stats.succeeded == 5
        assert [(await rq.get_job(i)).result for i in ids] == [0, 2, 4, 6, 8]
