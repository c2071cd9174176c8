"""A durable DAG flow: two fetches, a merge that waits for both, and a follow-up notification.

Run: python examples/dag_flow.py
``depends_on`` keeps "merge" blocked until both fetches completed; ``metadata.follow_ups`` pushes
"notify" in the same transaction as the merge's ack, with the merge's result as its data.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from rustqueue_core import Job, RustQueue

FLOW = "report-42"


async def main(db_path: Path) -> None:
    async with RustQueue.sqlite(str(db_path)).build() as rq:
        sales = await rq.push("fetch", "fetch-sales", {"region": "eu"}, flow_id=FLOW)
        costs = await rq.push("fetch", "fetch-costs", {"region": "eu"}, flow_id=FLOW)
        merge = await rq.push(
            "merge",
            "merge-report",
            depends_on=[sales, costs],
            flow_id=FLOW,
            metadata={"follow_ups": [{"queue": "notify", "name": "email-report"}]},
        )
        merge_job = await rq.get_job(merge)
        assert merge_job is not None
        print("merge starts", merge_job.state)

        finished = asyncio.Event()

        async def fetch(job: Job) -> dict[str, Any]:
            amount = 1200 if job.name == "fetch-sales" else 700
            print("ran", job.name)
            return {"amount": amount}

        async def merge_report(job: Job) -> dict[str, Any]:
            parents = await rq.get_jobs(job.depends_on)
            totals = {p.name: p.result["amount"] for p in parents if p is not None}
            print("ran", job.name, "after", sorted(totals))
            return {"profit": totals["fetch-sales"] - totals["fetch-costs"]}

        async def notify(job: Job) -> str:
            print("ran", job.name, "with", job.data)
            finished.set()
            return "sent"

        workers = [
            rq.run_worker("fetch", fetch, concurrency=2, shutdown=finished),
            rq.run_worker("merge", merge_report, shutdown=finished),
            rq.run_worker("notify", notify, shutdown=finished),
        ]
        await asyncio.wait_for(asyncio.gather(*workers), timeout=30)

        flow = await rq.flow(FLOW)
        print(f"flow {FLOW}: {flow.summary.get('completed', 0)} of {flow.summary['total']} jobs completed")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp) / "flow.db"))
