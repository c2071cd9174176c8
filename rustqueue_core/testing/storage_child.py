"""Child process for the multi-process and crash conformance tests.

``python -m rustqueue_core.testing.storage_child URL MODE [ARGS...]`` opens the storage at ``URL``,
prints ``ready``, then works in ``MODE`` and prints one line per acknowledged operation (flushed at
once, so the parent knows exactly what was acknowledged before it kills the process):

* ``claim QUEUE BATCH`` — claim until the queue is empty: ``claimed <id>`` per job.
* ``unique QUEUE KEY COUNT`` — COUNT concurrent inserts with one unique key: ``ok <id>`` or ``conflict``.
* ``fire NAME COUNT`` — COUNT concurrent fires of the schedule's unfired slot: ``fired <id>`` or ``lost``.
* ``push`` — single inserts forever: ``acked <id> <unix time>``.
* ``batch SIZE`` — batch inserts forever, each batch one ``flow_id``: ``batch <flow_id> <unix time>``.
* ``concurrent TASKS`` — TASKS tasks inserting forever: ``acked <id> <unix time>``.
* ``work`` — push 20, claim 10, ack them, forever: ``pushed <id> <time>`` and ``acked <id> <time>``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from rustqueue_core.storage import CompleteItem, InsertConflict
from rustqueue_core.testing.jobs import make_job
from rustqueue_core.testing.resolve import resolve_storage_spec

#: Seconds to pause after each acknowledged operation (``RUSTQUEUE_CHILD_PACE``): keeps the output of a
#: fast in-memory backend bounded while a test waits out a write-back window.
PACE = float(os.environ.get("RUSTQUEUE_CHILD_PACE", "0"))


async def _pace() -> None:
    if PACE:
        await asyncio.sleep(PACE)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _now() -> datetime:
    return datetime.now(UTC)


async def _claim(storage: Any, queue: str, batch: int) -> None:
    empty = 0
    while empty < 3:
        jobs = await storage.claim(queue, batch, _now(), consumer_id=f"pid-{id(storage)}", lease_ms=600_000)
        if not jobs:
            empty += 1
            await asyncio.sleep(0.01)
            continue
        empty = 0
        for job in jobs:
            _say(f"claimed {job.id}")


async def _unique(storage: Any, queue: str, key: str, count: int) -> None:
    async def one(i: int) -> str:
        job = make_job(queue, i, unique_key=key, created_at=_now())
        try:
            await storage.insert_jobs([job], _now())
        except InsertConflict:
            return "conflict"
        return f"ok {job.id}"

    for line in await asyncio.gather(*(one(i) for i in range(count))):
        _say(line)


async def _fire(storage: Any, name: str, count: int) -> None:
    async def one(i: int) -> str:
        job = make_job("scheduled", i, created_at=_now())
        won = await storage.fire_schedule(name, None, {"next_run_at": _now(), "execution_count": 1}, [job], _now())
        return f"fired {job.id}" if won else "lost"

    for line in await asyncio.gather(*(one(i) for i in range(count))):
        _say(line)


async def _push(storage: Any) -> None:
    rank = 0
    while True:
        job = make_job("crash", rank, created_at=_now())
        await storage.insert_jobs([job], _now())
        _say(f"acked {job.id} {time.time()}")
        rank += 1
        await _pace()


async def _batch(storage: Any, size: int) -> None:
    rank = 0
    while True:
        flow = str(uuid.uuid4())
        jobs = [make_job("crash", rank + i, flow_id=flow, created_at=_now()) for i in range(size)]
        await storage.insert_jobs(jobs, _now())
        _say(f"batch {flow} {time.time()}")
        rank += size
        await _pace()


async def _concurrent(storage: Any, tasks: int) -> None:
    async def pusher(t: int) -> None:
        rank = t * 10_000_000
        while True:
            job = make_job("crash", rank, created_at=_now())
            await storage.insert_jobs([job], _now())
            _say(f"acked {job.id} {time.time()}")
            rank += 1
            await _pace()

    await asyncio.gather(*(pusher(t) for t in range(tasks)))


async def _work(storage: Any) -> None:
    rank = 0
    while True:
        jobs = [make_job("crash", rank + i, created_at=_now()) for i in range(20)]
        rank += 20
        await storage.insert_jobs(jobs, _now())
        stamp = time.time()
        for job in jobs:
            _say(f"pushed {job.id} {stamp}")
        claimed = await storage.claim("crash", 10, _now(), consumer_id="child", lease_ms=600_000)
        outcomes = await storage.complete([CompleteItem(id=j.id, lease_token=j.lease_token) for j in claimed], _now())
        stamp = time.time()
        for outcome in outcomes:
            if outcome.outcome == "ok":
                _say(f"acked {outcome.id} {stamp}")
        await _pace()


async def main(argv: list[str]) -> None:
    url, mode, *args = argv
    storage = resolve_storage_spec(url).factory(url, {})
    await storage.open()
    _say("ready")
    try:
        if mode == "claim":
            await _claim(storage, args[0], int(args[1]))
        elif mode == "unique":
            await _unique(storage, args[0], args[1], int(args[2]))
        elif mode == "fire":
            await _fire(storage, args[0], int(args[1]))
        elif mode == "push":
            await _push(storage)
        elif mode == "batch":
            await _batch(storage, int(args[0]))
        elif mode == "concurrent":
            await _concurrent(storage, int(args[0]))
        elif mode == "work":
            await _work(storage)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await storage.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
