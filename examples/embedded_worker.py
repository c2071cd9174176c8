"""Embedded worker: push jobs into a SQLite-backed queue and process them with an async handler.

Run: python examples/embedded_worker.py
The worker stops itself once every job is done (the ``shutdown`` event), then the script prints
each job's stored result.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from rustqueue_core import Job, RustQueue


async def main(db_path: Path) -> None:
    async with RustQueue.sqlite(str(db_path)).build() as rq:
        recipients = ["ada@example.com", "grace@example.com", "linus@example.com"]
        ids = await rq.push_batch("emails", [{"name": "send-welcome", "data": {"to": to}} for to in recipients])
        all_sent = asyncio.Event()
        sent: list[str] = []

        async def send_welcome(job: Job) -> dict[str, str]:
            await asyncio.sleep(0.05)  # stands in for an SMTP call
            sent.append(job.data["to"])
            if len(sent) == len(ids):
                all_sent.set()
            return {"delivered_to": job.data["to"]}

        stats = await rq.run_worker("emails", send_welcome, concurrency=2, shutdown=all_sent)
        print(f"worker: processed={stats.processed} succeeded={stats.succeeded} failed={stats.failed}")
        for job_id in ids:
            job = await rq.get_job(job_id)
            assert job is not None
            print(f"{job.name} {job.state} {job.result}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp) / "jobs.db"))
