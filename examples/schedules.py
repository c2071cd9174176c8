"""An interval schedule fired by the engine's own housekeeping, processed by a worker.

Run: python examples/schedules.py
Housekeeping is on by default; a short tick interval makes the demo quick. The schedule fires at
the first tick (``run_immediately``), then every 200 ms; the worker stops after three runs.
"""

from __future__ import annotations

import asyncio
import time

from rustqueue_core import Job, RustQueue


async def main() -> None:
    async with RustQueue.memory().tick_interval(0.05).build() as rq:
        await rq.create_schedule(
            name="refresh-cache",
            queue="maintenance",
            job_name="refresh",
            job_data={"scope": "all"},
            every_ms=200,
        )
        runs: list[float] = []
        three_runs = asyncio.Event()
        started = time.monotonic()

        async def refresh(job: Job) -> None:
            runs.append(time.monotonic() - started)
            print(f"run {len(runs)}: {job.name} {job.data}")
            if len(runs) == 3:
                three_runs.set()

        await asyncio.wait_for(rq.run_worker("maintenance", refresh, shutdown=three_runs), timeout=30)
        await rq.pause_schedule("refresh-cache")
        schedule = await rq.get_schedule("refresh-cache")
        fired_enough = schedule.execution_count >= len(runs)
        print(f"schedule fired at least {len(runs)} times: {fired_enough}, paused: {schedule.paused}")


if __name__ == "__main__":
    asyncio.run(main())
