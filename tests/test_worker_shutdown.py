"""The worker runtime's shutdown (SEMANTICS §7.3): grace periods, signals, cancellation, crashes and
engine close, against a real engine on the selected storage."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from rustqueue_core.models import Job
from rustqueue_core.settings import EngineSettings
from rustqueue_core.testing.waiting import has_left, state_of, wait_until
from rustqueue_core.worker import run_worker

NO_HOUSEKEEPING = EngineSettings(housekeeping=False)


def sleepy_handler(started: set[str], quick: str) -> Callable[[Job], Awaitable[str]]:
    """A handler that notes each job's name in ``started``, then runs 0.2 s for job ``quick`` and 30 s
    (past any grace period here) for the others."""

    async def handler(job: Job) -> str:
        started.add(job.name)
        await asyncio.sleep(0.2 if job.name == quick else 30)
        return job.name

    return handler


def stuck_handler(started: asyncio.Event) -> Callable[[Job], Awaitable[None]]:
    """A handler that sets ``started`` and then runs for 30 s (until it is cancelled)."""

    async def handler(job: Job) -> None:
        started.set()
        await asyncio.sleep(30)

    return handler


async def test_shutdown_waits_for_the_grace_period_then_releases(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    quick = await rq.push("q", "quick")
    stuck = await rq.push("q", "stuck")
    spare = await rq.push("q", "spare")
    started: set[str] = set()

    handler = sleepy_handler(started, "quick")

    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(rq, "q", handler, concurrency=2, prefetch=1, shutdown=stop, grace_period=0.6, poll_interval=0.05)
    )
    await wait_until(lambda: _both_started(started))
    stop.set()
    stats = await asyncio.wait_for(worker, 5)
    assert await state_of(rq, quick) == "completed"  # finished inside the grace period
    for job_id in (stuck, spare):
        job = await rq.get_job(job_id)
        assert (job.state, job.attempt) == ("waiting", 0)
    assert (stats.succeeded, stats.released) == (1, 2)


async def _both_started(started: set[str]) -> bool:
    return {"quick", "stuck"} <= started


SIGTERM_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from rustqueue_core import RustQueue

    async def handler(job):
        print("started", job.name, flush=True)
        await asyncio.sleep(0.4 if job.name == "quick" else 30)
        return job.name

    async def main(path):
        async with RustQueue.sqlite(path).housekeeping(False).build() as rq:
            for name in ("quick", "stuck", "spare"):
                await rq.push("q", name)
            stats = await rq.run_worker("q", handler, concurrency=2, prefetch=1, grace_period=1.0)
            print("stats", json.dumps({"succeeded": stats.succeeded, "released": stats.released}), flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("copies", [1, 2], ids=["once", "with-a-launcher-copy"])
async def test_sigterm_drains_then_releases_with_attempt_unchanged(tmp_path: Path, copies: int) -> None:
    """SIGTERM drains: the quick job finishes within the grace period, the stuck one and the prefetched one
    go back unchanged. A copy of the signal arriving at once (a launcher forwarding what the process group
    already got) is the same request and does not cut the grace period short."""
    from rustqueue_core.engine import RustQueue

    db = tmp_path / "sigterm.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SIGTERM_CHILD,
        str(db),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    lines: list[str] = []
    try:
        started: set[str] = set()
        while started != {"quick", "stuck"}:
            line = (await asyncio.wait_for(child.stdout.readline(), 20)).decode()
            assert line, "child exited before both jobs started"
            lines.append(line)
            if line.startswith("started"):
                started.add(line.split()[1])
        for _ in range(copies):
            os.kill(child.pid, signal.SIGTERM)
            await asyncio.sleep(0.02)
        out_bytes, err_bytes = await asyncio.wait_for(child.communicate(), 20)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    out, err = "".join(lines) + out_bytes.decode(), err_bytes.decode()
    assert child.returncode == 0, err
    stats_line = next(line for line in out.splitlines() if line.startswith("stats "))
    assert json.loads(stats_line.removeprefix("stats ")) == {"succeeded": 1, "released": 2}

    async with RustQueue.sqlite(str(db)).housekeeping(False).build() as rq:
        jobs, _ = await rq.list_jobs("q", limit=10)
        by_name = {job.name: job for job in jobs}
    assert by_name["quick"].state == "completed"
    for name in ("stuck", "spare"):
        assert (by_name[name].state, by_name[name].attempt) == ("waiting", 0)
    assert by_name["stuck"].deliveries == 1


async def test_drain_workers_lets_short_jobs_finish_and_releases_long_ones(engine_factory: Any) -> None:
    from rustqueue_core.worker import drain_workers

    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    short = await rq.push("a", "short")
    long = await rq.push("b", "long")
    started: set[str] = set()

    handler = sleepy_handler(started, "short")

    workers = [
        asyncio.create_task(run_worker(rq, queue, handler, poll_interval=0.05, grace_period=30)) for queue in ("a", "b")
    ]
    await wait_until(lambda: _started(started, {"short", "long"}))
    await asyncio.wait_for(drain_workers(rq, grace=0.5), 5)  # shortens both workers' grace periods
    stats = await asyncio.wait_for(asyncio.gather(*workers), 1)
    assert await state_of(rq, short) == "completed"
    assert ((await rq.get_job(long)).state, (await rq.get_job(long)).attempt) == ("waiting", 0)
    assert [s.succeeded for s in stats] == [1, 0]
    assert [s.released for s in stats] == [0, 1]


async def _started(started: set[str], expected: set[str]) -> bool:
    return expected <= started


async def test_worker_stops_when_its_engine_closes(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)

    async def handler(job: Job) -> None:
        return None

    worker = asyncio.create_task(run_worker(rq, "q", handler, poll_interval=0.05))
    await asyncio.sleep(0.1)
    await rq.close()
    stats = await asyncio.wait_for(worker, 5)
    assert stats.processed == 0


async def test_cancelling_the_worker_releases_its_jobs_and_stops_the_heartbeat(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    job_id = await rq.push("q", "n")
    started = asyncio.Event()

    handler = stuck_handler(started)
    worker = asyncio.create_task(run_worker(rq, "q", handler, lease_ms=600, poll_interval=0.05))
    await asyncio.wait_for(started.wait(), 5)
    assert any(t.get_name().startswith("rustqueue-heartbeat") for t in asyncio.all_tasks())
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(worker, 5)
    job = await rq.get_job(job_id)
    assert (job.state, job.attempt) == ("waiting", 0)
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("rustqueue-")]


async def test_cancelling_during_the_grace_period_releases_at_once(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    job_id = await rq.push("q", "n")
    started = asyncio.Event()

    handler = stuck_handler(started)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(rq, "q", handler, shutdown=stop, grace_period=30, poll_interval=0.05))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.sleep(0.2)  # now inside the 30 s grace period
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(worker, 5)
    job = await rq.get_job(job_id)
    assert (job.state, job.attempt) == ("waiting", 0)


CRASH_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from rustqueue_core import RustQueue

    async def handler(job):
        print("started", job.id, flush=True)
        await asyncio.sleep(60)

    async def main(path):
        async with RustQueue.sqlite(path).housekeeping(False).build() as rq:
            await rq.push("q", "n", max_attempts=3)
            await rq.run_worker("q", handler, lease_ms=400)

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.timeout(60)
async def test_a_crashed_worker_stops_heartbeating_and_its_job_is_recovered(tmp_path: Path) -> None:
    from rustqueue_core.engine import RustQueue

    db = tmp_path / "crash.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASH_CHILD, str(db), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        line = (await asyncio.wait_for(child.stdout.readline(), 20)).decode()
        assert line.startswith("started"), line
        job_id = line.split()[1]
        await asyncio.sleep(0.6)  # the worker is alive past its lease: heartbeats keep the job
        async with RustQueue.sqlite(str(db)).housekeeping(False).build() as rq:
            await rq.tick()
            assert await state_of(rq, job_id) == "active"
        child.kill()  # no graceful path: no release, no more heartbeats
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    async with RustQueue.sqlite(str(db)).tick_interval(0.05).build() as rq:
        await wait_until(lambda: has_left(rq, job_id), within=5)
        job = await rq.get_job(job_id)
    assert (job.attempt, job.last_error) == (1, "job stalled (no heartbeat)")
    assert job.state in ("waiting", "delayed")


async def test_engine_close_drains_running_workers_within_its_grace(tmp_path: Path) -> None:
    from rustqueue_core.engine import RustQueue

    db = str(tmp_path / "close.db")
    rq = await RustQueue.sqlite(db).housekeeping(False).build()
    quick = await rq.push("a", "quick")
    stuck = await rq.push("b", "stuck")
    started: set[str] = set()

    handler = sleepy_handler(started, "quick")

    workers = [asyncio.create_task(run_worker(rq, q, handler, poll_interval=0.05)) for q in ("a", "b")]
    await wait_until(lambda: _started(started, {"quick", "stuck"}))
    await asyncio.wait_for(rq.close(grace=0.6), 10)
    stats = await asyncio.wait_for(asyncio.gather(*workers), 1)
    assert [(s.succeeded, s.released) for s in stats] == [(1, 0), (0, 1)]
    async with RustQueue.sqlite(db).housekeeping(False).build() as reopened:
        assert await state_of(reopened, quick) == "completed"
        job = await reopened.get_job(stuck)
        assert (job.state, job.attempt) == ("waiting", 0)
