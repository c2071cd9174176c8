"""Three processes with different batch sizes claim from one database: every job is handed out once.

(The conformance suite covers two processes and racing unique keys.)"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

from rustqueue_postgres.storage import PostgresStorage

from rustqueue_core.ids import new_ids
from rustqueue_core.models import Job
from rustqueue_core.sortkey import sort_key, timestamp_us

NOW = datetime(2026, 1, 1, tzinfo=UTC)

CLAIMER = r"""
import asyncio, json, sys
from datetime import UTC, datetime
from rustqueue_postgres.storage import PostgresStorage

async def main(url: str, batch: int) -> None:
    storage = PostgresStorage(url)
    await storage.open()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the start signal
    now = datetime(2026, 1, 1, tzinfo=UTC)
    taken: list[str] = []
    empty = 0
    try:
        while empty < 3:
            jobs = await storage.claim("shared", batch, now, consumer_id=sys.argv[3], lease_ms=60_000)
            if not jobs:
                empty += 1
                await asyncio.sleep(0.05)
                continue
            empty = 0
            taken.extend(j.id for j in jobs)
    finally:
        await storage.close()
    print(json.dumps(taken))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def _start(*args: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line.strip() == b"ready", line
    return process


async def _finish(process: asyncio.subprocess.Process) -> str:
    out, err = await asyncio.wait_for(process.communicate(b"go\n"), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode().strip().splitlines()[-1]


def _jobs(n: int) -> list[Job]:
    return [
        Job(
            id=job_id,
            name="n",
            queue="shared",
            created_at=NOW,
            updated_at=NOW,
            sort_key=sort_key("max_first", 0, False, timestamp_us(NOW), raw),
        )
        for job_id, raw in new_ids(n)
    ]


async def test_three_processes_never_receive_the_same_job(pg_url: str, pg_storage: PostgresStorage) -> None:
    jobs = _jobs(1_800)
    for start in range(0, len(jobs), 300):
        await pg_storage.insert_jobs(jobs[start : start + 300], NOW)
    # All three connect first, then start claiming at the same moment.
    processes = await asyncio.gather(
        _start("-c", CLAIMER, pg_url, "7", "p1"),
        _start("-c", CLAIMER, pg_url, "13", "p2"),
        _start("-c", CLAIMER, pg_url, "1", "p3"),
    )
    outputs = await asyncio.gather(*(_finish(p) for p in processes))
    taken = [job_id for out in outputs for job_id in json.loads(out)]
    assert len(taken) == len(set(taken)) == len(jobs)
    # A process that wakes late on a loaded machine may find the queue drained; two must overlap.
    assert sum(1 for out in outputs if json.loads(out)) >= 2, "the claims ran concurrently"
    counts = await pg_storage.count_jobs(["shared"])
    assert counts["shared"].active == len(jobs) and counts["shared"].waiting == 0
