"""The worker runtime (SEMANTICS §7.3) against a real engine on the selected storage."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from rustqueue_core.errors import ValidationError
from rustqueue_core.models import Job
from rustqueue_core.settings import EngineSettings
from rustqueue_core.testing.waiting import has_left, state_of, wait_until
from rustqueue_core.worker import (
    MAX_ERROR_BYTES,
    TRUNCATED_SUFFIX,
    DeadLetter,
    Retry,
    format_error,
    heartbeat_interval,
    run_worker,
)

FAST_TICKS = EngineSettings(tick_interval_ms=50)
NO_HOUSEKEEPING = EngineSettings(housekeeping=False)


async def run_until_settled(rq: Any, queue: str, handler: Any, ids: list[str], **options: Any) -> Any:
    """Run a worker until every job in ``ids`` left ``waiting``/``active``, then stop it."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(rq, queue, handler, shutdown=stop, poll_interval=0.05, **options))

    async def settled() -> bool:
        states = [await state_of(rq, i) for i in ids]
        return all(s not in ("waiting", "active") for s in states)

    try:
        await wait_until(settled)
    finally:
        stop.set()
    return await asyncio.wait_for(worker, 10)


# --------------------------------------------------------------------------- pure helpers


def test_error_text_is_type_and_message_cut_on_a_character_boundary() -> None:
    assert format_error(KeyError("x")) == "KeyError: 'x'"
    text = format_error(ValueError("é" * 10_000))  # 2 bytes per character: the cut lands mid-character
    assert text.endswith(TRUNCATED_SUFFIX)
    body = text.removesuffix(TRUNCATED_SUFFIX)
    assert len(body.encode()) <= MAX_ERROR_BYTES
    assert len(body.encode()) >= MAX_ERROR_BYTES - 1
    assert body.startswith("ValueError: é")


def test_heartbeat_interval_is_a_third_of_the_lease_clamped() -> None:
    assert heartbeat_interval(3_000) == pytest.approx(1.0)
    assert heartbeat_interval(300) == pytest.approx(0.1)
    assert heartbeat_interval(60) == pytest.approx(0.05)
    assert heartbeat_interval(600_000) == pytest.approx(30.0)


# --------------------------------------------------------------------------- outcomes


async def test_async_handler_runs_once_and_its_result_is_stored(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    job_id = await rq.push("emails", "send", {"to": "a@b.c"})
    calls: list[str] = []

    async def handler(job: Job) -> dict[str, Any]:
        calls.append(job.id)
        return {"sent_to": job.data["to"]}

    stats = await run_until_settled(rq, "emails", handler, [job_id])
    job = await rq.get_job(job_id)
    assert job.state == "completed"
    assert job.result == {"sent_to": "a@b.c"}
    assert calls == [job_id]
    assert (stats.processed, stats.succeeded, stats.failed) == (1, 1, 0)


async def test_plain_function_handler_runs_in_a_worker_thread(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    ids = await rq.push_batch("q", [{"name": "n", "data": {"i": i}} for i in range(3)])
    threads: set[str] = set()

    def handler(job: Job) -> int:
        threads.add(threading.current_thread().name)
        return int(job.data["i"]) * 10

    await run_until_settled(rq, "q", handler, ids, concurrency=2)
    results = [(await rq.get_job(i)).result for i in ids]
    assert results == [0, 10, 20]
    assert threading.main_thread().name not in threads


async def test_raising_handler_fails_the_job_with_type_and_message(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    job_id = await rq.push("q", "n", max_attempts=3)

    async def handler(job: Job) -> None:
        raise ValueError("bad input")

    stats = await run_until_settled(rq, "q", handler, [job_id])
    job = await rq.get_job(job_id)
    assert job.state in ("delayed", "waiting")
    assert job.attempt == 1
    assert job.last_error == "ValueError: bad input"
    assert (stats.processed, stats.failed) == (1, 1)


async def test_retry_sets_the_delay_and_dead_letter_skips_retries(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    retry_id = await rq.push("q", "retry-me", max_attempts=5)
    dead_id = await rq.push("q", "poison", max_attempts=5)

    async def handler(job: Job) -> None:
        if job.name == "retry-me":
            raise Retry(delay_ms=0, reason="upstream busy")
        raise DeadLetter("unparseable payload")

    await run_until_settled(rq, "q", handler, [dead_id])
    dead = await rq.get_job(dead_id)
    assert dead.state == "dlq"
    assert dead.last_error == "unparseable payload"
    retried = await rq.get_job(retry_id)
    # delay 0 puts it straight back to waiting, so the worker may have tried it again already.
    assert retried.attempt >= 1
    assert retried.last_error == "Retry: upstream busy"


async def test_unstorable_result_fails_the_job_instead_of_stranding_it(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    job_id = await rq.push("q", "n", max_attempts=1)

    async def handler(job: Job) -> object:
        return object()  # not JSON

    await run_until_settled(rq, "q", handler, [job_id])
    assert await state_of(rq, job_id) in ("dlq", "completed")  # memory stores objects as-is


# --------------------------------------------------------------------------- leases and heartbeats


async def test_handler_longer_than_its_lease_completes_once(engine_factory: Any) -> None:
    rq = await engine_factory(settings=FAST_TICKS)
    job_id = await rq.push("q", "slow")
    calls = 0

    async def handler(job: Job) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(1.8)  # twice the lease: only heartbeats keep it
        return "done"

    # Heartbeats every 0.3 s: a loaded machine may delay one by up to 0.6 s without losing the lease.
    await run_until_settled(rq, "q", handler, [job_id], lease_ms=900)
    job = await rq.get_job(job_id)
    assert (job.state, job.result, job.deliveries, job.attempt, calls) == ("completed", "done", 1, 0, 1)

    # Control: the same lease without heartbeats does expire under this housekeeping.
    other = await rq.push("q", "unattended")
    [claimed] = await rq.claim("q", 1, lease_ms=300)
    assert claimed.id == other
    await wait_until(lambda: has_left(rq, other), within=3)


async def test_lost_lease_cancels_the_handler_and_discards_its_outcome(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    job_id = await rq.push("q", "n")
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(job: Job) -> str:
        started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(rq, "q", handler, lease_ms=600, shutdown=stop, poll_interval=0.05))
    await asyncio.wait_for(started.wait(), 5)
    # Another delivery takes the job over (as lease recovery would): the worker's token is now dead.
    await rq.release(job_id)
    [again] = await rq.claim("q", 1, consumer_id="someone-else")
    await asyncio.wait_for(cancelled.wait(), 3)
    stop.set()
    stats = await asyncio.wait_for(worker, 5)
    job = await rq.get_job(job_id)
    assert (job.state, job.lease_token, job.result) == ("active", again.lease_token, None)
    assert stats.succeeded == 0


async def test_timeout_cancels_an_async_handler_locally(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)  # no housekeeping: only the worker can time out
    job_id = await rq.push("q", "n", timeout_ms=150, max_attempts=1)
    cancelled = asyncio.Event()

    async def handler(job: Job) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await run_until_settled(rq, "q", handler, [job_id])
    job = await rq.get_job(job_id)
    assert (job.state, job.last_error) == ("dlq", "job timed out")
    assert cancelled.is_set()


async def test_timed_out_thread_keeps_its_slot_and_its_late_result_is_discarded(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    slow = await rq.push("q", "slow", timeout_ms=100, max_attempts=1)
    nxt = await rq.push("q", "next")
    events: list[tuple[str, float]] = []

    def handler(job: Job) -> str:
        events.append((f"start {job.name}", time.monotonic()))
        if job.name == "slow":
            time.sleep(0.5)
        events.append((f"end {job.name}", time.monotonic()))
        return job.name

    await run_until_settled(rq, "q", handler, [slow, nxt], concurrency=1)
    assert (await rq.get_job(slow)).state == "dlq"
    assert (await rq.get_job(slow)).result is None
    assert (await rq.get_job(nxt)).result == "next"
    names = [name for name, _ in events]
    # With one slot, "next" starts only after the overrunning thread really ended.
    assert names == ["start slow", "end slow", "start next", "end next"]


# --------------------------------------------------------------------------- concurrency and claiming


async def test_concurrency_four_runs_four_at_once_and_never_holds_more(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    ids = await rq.push_batch("q", [{"name": "n"} for _ in range(10)])
    running = 0
    peak = 0
    most_active = 0

    async def handler(job: Job) -> None:
        nonlocal running, peak, most_active
        running += 1
        peak = max(peak, running)
        counts = await rq.counts("q")
        most_active = max(most_active, counts.active)
        await asyncio.sleep(0.1)
        running -= 1

    await run_until_settled(rq, "q", handler, ids, concurrency=4)
    assert peak == 4
    assert most_active <= 4
    assert all([await state_of(rq, i) == "completed" for i in ids])


async def test_prefetch_claims_at_most_that_many_extra_jobs(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    ids = await rq.push_batch("q", [{"name": "n"} for _ in range(6)])
    most_active = 0

    async def handler(job: Job) -> None:
        nonlocal most_active
        await asyncio.sleep(0.05)
        most_active = max(most_active, (await rq.counts("q")).active)

    await run_until_settled(rq, "q", handler, ids, concurrency=1, prefetch=2)
    assert most_active == 3


class FlakyClaims:
    """The engine, with its first ``failures`` claims raising a storage error."""

    def __init__(self, engine: Any, failures: int) -> None:
        self._engine = engine
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def claim(self, *args: Any, **kwargs: Any) -> list[Job]:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("database is locked")
        result: list[Job] = await self._engine.claim(*args, **kwargs)
        return result


async def test_claim_errors_are_retried_and_do_not_end_the_worker(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    job_id = await rq.push("q", "n")
    flaky = FlakyClaims(rq, failures=2)

    async def handler(job: Job) -> str:
        return "ok"

    await run_until_settled(flaky, "q", handler, [job_id])
    assert flaky.failures == 0
    assert await state_of(rq, job_id) == "completed"


async def test_invalid_options_are_rejected_before_claiming(engine_factory: Any) -> None:
    rq = await engine_factory(settings=NO_HOUSEKEEPING)
    with pytest.raises(ValidationError):
        await run_worker(rq, "q", lambda job: None, concurrency=0)


# --------------------------------------------------------------------------- middleware


async def test_worker_middleware_wraps_every_job_composed_once(engine_factory: Any) -> None:
    from rustqueue_core.hookspecs import hookimpl
    from rustqueue_core.plugins import PluginHost

    calls: list[str] = []
    composed: list[str] = []

    class Tracing:
        @hookimpl
        def rustqueue_worker_middleware(self, queue: str, worker: Any) -> Any:
            composed.append(worker.consumer_id)

            async def middleware(job: Job, call_next: Any) -> Any:
                calls.append(f"before {job.name}")
                result = await call_next(job)
                calls.append(f"after {job.name}")
                return {"wrapped": result}

            return middleware

    host = PluginHost.embedded([Tracing()], autoload=False)
    rq = await engine_factory(settings=NO_HOUSEKEEPING, host=host)
    ids = await rq.push_batch("q", [{"name": "a"}, {"name": "b"}])

    async def handler(job: Job) -> str:
        calls.append(f"run {job.name}")
        return job.name

    await run_until_settled(rq, "q", handler, ids, consumer_id="w-1")
    assert composed == ["w-1"]
    assert calls == ["before a", "run a", "after a", "before b", "run b", "after b"]
    assert (await rq.get_job(ids[0])).result == {"wrapped": "a"}
