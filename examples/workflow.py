"""In-process workflows, and a worker registry that routes jobs to engines.

Run: python examples/workflow.py
A ``Workflow`` chains async steps in memory (a fan-out runs its steps concurrently and joins their
outputs in step order). A ``WorkerRegistry`` picks a processor per job: ``metadata.engine`` first,
then the queue's route. Here the "nlp" engine runs the workflow for each claimed document.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rustqueue_core import Job, RustQueue, WorkerRegistry, Workflow


async def normalize(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "text": " ".join(doc["text"].split()).lower()}


async def count_words(doc: dict[str, Any]) -> int:
    return len(doc["text"].split())


async def longest_word(doc: dict[str, Any]) -> str:
    await asyncio.sleep(0.01)  # finishes last, yet its output stays second: joins keep step order
    return max(doc["text"].split(), key=len)


class Summary:
    async def join(self, outputs: list[Any]) -> dict[str, Any]:
        words, longest = outputs
        return {"words": words, "longest": longest}


ANALYZE = Workflow().then(normalize).fan_out_with_join([count_words, longest_word], Summary())


class NlpProcessor:
    async def process(self, job: Job) -> dict[str, Any]:
        summary: dict[str, Any] = await ANALYZE.execute(job.data)
        return summary


class EchoProcessor:
    async def process(self, job: Job) -> dict[str, Any]:
        return {"echo": job.data["text"]}


async def main() -> None:
    print("workflow alone:", await ANALYZE.execute({"text": "  The  quick brown   fox  "}))

    registry = WorkerRegistry().register_engine("nlp", NlpProcessor).register_engine("echo", EchoProcessor)
    registry.route_queue("documents", "nlp")
    async with RustQueue.memory().worker_registry(registry).build() as rq:
        routed = await rq.push("documents", "analyze", {"text": "Embedded queues need no infrastructure"})
        overridden = await rq.push("documents", "analyze", {"text": "hello"}, metadata={"engine": "echo"})
        while await rq.dispatch_next("documents") is not None:
            pass
        for job_id in (routed, overridden):
            job = await rq.get_job(job_id)
            assert job is not None
            print(job.state, job.result)


if __name__ == "__main__":
    asyncio.run(main())
