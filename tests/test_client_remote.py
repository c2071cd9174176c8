"""RemoteRustQueue: the engine API over a running server (TCP and HTTP), driving ``run_worker``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from rustqueue_core.errors import JobNotFound, LeaseLost, ScheduleNotFound
from rustqueue_core.models import Job, NewJob, Schedule
from rustqueue_core.remote import RemoteRustQueue, open_remote
from rustqueue_core.testing.server import ServerProcess


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """``rustqueue serve`` in a subprocess on free ports: yields (http_port, tcp_port)."""
    with ServerProcess(["--plugins=tcp,http"], cwd=tmp_path_factory.mktemp("server")) as server:
        yield server.http_port, server.tcp_port


@pytest_asyncio.fixture(params=["tcp", "http"])
async def remote(request: pytest.FixtureRequest, live_server: tuple[int, int]) -> AsyncIterator[RemoteRustQueue]:
    http_port, tcp_port = live_server
    url = f"tcp://127.0.0.1:{tcp_port}" if request.param == "tcp" else f"http://127.0.0.1:{http_port}"
    async with open_remote(url) as rq:
        yield rq


async def test_run_worker_processes_jobs(remote: RemoteRustQueue) -> None:
    queue = f"work-{remote.scheme}"
    ids = await remote.push_batch(queue, [NewJob(queue=queue, name="double", data={"n": n}) for n in range(20)])
    done = asyncio.Event()
    seen: list[str] = []

    async def handler(job: Job) -> int:
        seen.append(job.id)
        if len(seen) == len(ids):
            done.set()
        return int(job.data["n"]) * 2

    worker = asyncio.create_task(remote.run_worker(queue, handler, concurrency=4, shutdown=done, poll_interval=0.2))
    stats = await asyncio.wait_for(worker, 30)
    assert stats.succeeded == 20
    jobs = await remote.get_jobs(ids)
    assert all(j is not None and j.state == "completed" for j in jobs)
    assert [j.result for j in jobs if j is not None] == [n * 2 for n in range(20)]


async def test_failing_handler_retries_then_dead_letters(remote: RemoteRustQueue) -> None:
    queue = f"flaky-{remote.scheme}"
    job_id = await remote.push(queue, "boom", {}, max_attempts=1)
    done = asyncio.Event()

    def handler(job: Job) -> None:
        done.set()
        raise RuntimeError("kaput")

    await asyncio.wait_for(remote.run_worker(queue, handler, shutdown=done, poll_interval=0.2), 30)
    job = await remote.get_job(job_id)
    assert job is not None and job.state == "dlq"
    assert job.last_error is not None and "kaput" in job.last_error
    assert [j.id for j in await remote.dlq(queue)] == [job_id]


async def test_delivery_methods(remote: RemoteRustQueue) -> None:
    queue = f"api-{remote.scheme}"
    await remote.push_batch(queue, [{"name": "a"}, {"name": "b"}, {"name": "c", "max_attempts": 5}])
    first, second, third = await remote.claim(queue, 3, consumer_id="c1", lease_ms=30000)
    assert all(isinstance(j, Job) and j.lease_token for j in (first, second, third))
    with pytest.raises(LeaseLost):
        await remote.ack(first.id, token="not-the-token")
    await remote.ack(first.id, "r", token=first.lease_token)
    beat = await remote.heartbeat([{"id": second.id, "token": second.lease_token}, {"id": third.id}])
    assert (beat.ok, beat.failed) == (2, 0)
    await remote.progress(second.id, 30, "step", token=second.lease_token)
    released = await remote.release(second.id, token=second.lease_token)
    assert released.ok == 1
    outcome = await remote.fail(third.id, "oops", token=third.lease_token, retry_delay_ms=0)
    assert outcome.will_retry is True
    counts = await remote.counts(queue)
    assert (counts.completed, counts.waiting, counts.active) == (1, 2, 0)
    assert queue in [q.name for q in await remote.queues()]
    with pytest.raises(JobNotFound):
        await remote.cancel("00000000-0000-7000-8000-000000000000")
    assert (await remote.health()).status == "healthy"


async def test_long_poll_does_not_block_other_calls(remote: RemoteRustQueue) -> None:
    queue = f"lp-{remote.scheme}"
    waiting = asyncio.create_task(remote.claim(queue, 1, wait=5.0))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    job_id = await remote.push(queue, "wake")
    assert time.monotonic() - started < 2.0
    jobs = await asyncio.wait_for(waiting, 10)
    assert [j.id for j in jobs] == [job_id]


async def test_schedules(remote: RemoteRustQueue) -> None:
    name = f"sched-{remote.scheme}"
    created = await remote.create_schedule(name=name, queue="sq", job_name="tick", every_ms=3_600_000)
    assert isinstance(created, Schedule) and created.every_ms == 3_600_000
    assert (await remote.pause_schedule(name)).paused is True
    assert (await remote.resume_schedule(name)).paused is False
    assert name in [s.name for s in await remote.list_schedules()]
    assert await remote.delete_schedule(name) is True
    with pytest.raises(ScheduleNotFound):
        await remote.get_schedule(name)


def test_open_remote_rejects_other_schemes() -> None:
    with pytest.raises(ValueError):
        open_remote("sqlite:///x.db")


async def test_nack_requeues_or_dead_letters(remote: RemoteRustQueue) -> None:
    queue = f"nack-{remote.scheme}"
    await remote.push_batch(queue, [{"name": "a"}, {"name": "b"}])
    first, second = await remote.claim(queue, 2)
    requeued = await remote.nack(first.id, token=first.lease_token, reason="busy")
    assert (requeued.will_retry, requeued.state) == (True, "waiting")
    dead = await remote.nack(second.id, token=second.lease_token, requeue=False)
    assert dead.will_retry is False
    stored = await remote.get_job(first.id)
    assert stored is not None and (stored.state, stored.attempt, stored.last_error) == ("waiting", 1, "busy")
    assert [j.id for j in await remote.dlq(queue)] == [second.id]


async def test_dead_letter_from_a_handler(remote: RemoteRustQueue) -> None:
    from rustqueue_core.worker import DeadLetter

    queue = f"dl-{remote.scheme}"
    job_id = await remote.push(queue, "poison")
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        done.set()
        raise DeadLetter("unprocessable")

    await asyncio.wait_for(remote.run_worker(queue, handler, shutdown=done, poll_interval=0.2), 30)
    job = await remote.get_job(job_id)
    assert job is not None and (job.state, job.last_error) == ("dlq", "unprocessable")


@pytest.mark.parametrize("scheme", ["tcp", "http"])
async def test_same_worker_code_runs_through_rustqueue_open(scheme: str, live_server: tuple[int, int]) -> None:
    """``RustQueue.open("tcp://…")`` builds a remote engine: the embedded worker code runs unchanged."""
    from rustqueue_core import RustQueue

    http_port, tcp_port = live_server
    port = tcp_port if scheme == "tcp" else http_port
    async with RustQueue.open(f"{scheme}://127.0.0.1:{port}").build() as rq:
        assert isinstance(rq, RemoteRustQueue)
        queue = f"open-{scheme}"
        job_id = await rq.push(queue, "double", {"n": 21})
        stop = asyncio.Event()

        async def handler(job: Job) -> dict[str, int]:
            stop.set()
            return {"n": job.data["n"] * 2}

        stats = await asyncio.wait_for(
            rq.run_worker(queue, handler, shutdown=stop, poll_interval=0.05, grace_period=5), 20
        )
        assert stats.succeeded == 1
        job = await rq.get_job(job_id)
        assert job is not None and job.state == "completed" and job.result == {"n": 42}
