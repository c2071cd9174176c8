"""Workflow (SEMANTICS §7.5) and WorkerRegistry routing rules (§7.4) that need no engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from rustqueue_core.errors import ValidationError
from rustqueue_core.models import Job
from rustqueue_core.workflow import UnroutableJob, WorkerRegistry, Workflow

# --------------------------------------------------------------------------- workflow


async def add_one(value: int) -> int:
    return value + 1


async def double(value: int) -> int:
    return value * 2


class Step:
    """An object step, as engines provide them."""

    def __init__(self, engine: str, fn: Any) -> None:
        self.engine = engine
        self._fn = fn

    async def execute(self, input: Any) -> Any:
        return await self._fn(input)


async def test_sequence_runs_in_order_feeding_each_output_forward() -> None:
    wf = Workflow().then(add_one).then(double).then(Step("py", add_one))
    assert await wf.execute(3) == 9  # ((3 + 1) * 2) + 1, not any other order
    assert len(wf) == 3


async def test_empty_workflow_returns_its_input() -> None:
    assert await Workflow().execute({"x": 1}) == {"x": 1}


async def test_fan_out_joins_in_step_order_not_completion_order() -> None:
    async def slow(value: int) -> str:
        await asyncio.sleep(0.05)
        return f"slow:{value}"

    async def fast(value: int) -> str:
        return f"fast:{value}"

    wf = Workflow().then(add_one).fan_out([slow, fast, Step("x", double)])
    assert await wf.execute(1) == ["slow:2", "fast:2", 4]


async def test_fan_out_steps_run_concurrently() -> None:
    running = 0
    peak = 0

    async def step(value: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return value

    await Workflow().fan_out([step, step, step]).execute(0)
    assert peak == 3


async def test_fan_out_gives_each_step_its_own_copy_of_the_input() -> None:
    async def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        doc["touched"] = True
        return doc

    async def observe(doc: dict[str, Any]) -> bool:
        await asyncio.sleep(0.01)
        return "touched" in doc

    source = {"items": [1, 2]}
    outputs = await Workflow().fan_out([mutate, observe]).execute(source)
    assert outputs[1] is False
    assert source == {"items": [1, 2]}


async def test_custom_join_object_and_callable() -> None:
    class Sum:
        async def join(self, outputs: list[int]) -> int:
            return sum(outputs)

    async def as_text(outputs: list[int]) -> str:
        return ",".join(map(str, outputs))

    wf = Workflow().fan_out_with_join([add_one, double], Sum()).fan_out_with_join([add_one, add_one], as_text)
    assert await wf.execute(5) == "17,17"  # 6 + 10 = 16, then [17, 17]


def test_empty_fan_out_raises_at_definition() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        Workflow().fan_out([])
    with pytest.raises(ValueError):
        Workflow().fan_out_with_join([], as_is)


async def as_is(outputs: list[Any]) -> list[Any]:
    return outputs


def test_non_callable_step_is_rejected() -> None:
    with pytest.raises(TypeError):
        Workflow().then(42)  # type: ignore[arg-type]


async def test_first_error_cancels_siblings_and_propagates_unchanged() -> None:
    cancelled = asyncio.Event()
    finished = False

    async def long_running(value: int) -> int:
        nonlocal finished
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finished = True
        return value

    async def broken(value: int) -> int:
        await asyncio.sleep(0.01)
        raise KeyError("missing")

    later_stage_ran = False

    async def later(value: Any) -> Any:
        nonlocal later_stage_ran
        later_stage_ran = True
        return value

    wf = Workflow().fan_out([long_running, broken]).then(later)
    with pytest.raises(KeyError, match="missing"):
        await asyncio.wait_for(wf.execute(1), timeout=2)
    # The sibling is cancelled before the error reaches the caller, not left running.
    assert cancelled.is_set()
    assert not finished
    assert not later_stage_ran


async def test_sequential_error_stops_the_workflow() -> None:
    async def fail(value: int) -> int:
        raise RuntimeError("step failed")

    reached = False

    async def after(value: int) -> int:
        nonlocal reached
        reached = True
        return value

    with pytest.raises(RuntimeError, match="step failed"):
        await Workflow().then(fail).then(after).execute(0)
    assert not reached


async def test_cancelling_execute_cancels_running_fan_out_steps() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hang(value: int) -> int:
        started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return value

    task = asyncio.create_task(Workflow().fan_out([hang, hang]).execute(0))
    await asyncio.wait_for(started.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


# --------------------------------------------------------------------------- registry (no engine)


def _job(queue: str = "q", metadata: Any = None) -> Job:
    now = datetime.now(UTC)
    return Job(id="0190-job", name="n", queue=queue, created_at=now, updated_at=now, metadata=metadata)


class Echo:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def process(self, job: Job) -> dict[str, Any]:
        return {"engine": self.tag, "job": job.id}


def test_route_to_unknown_engine_is_a_validation_error_with_the_exact_message() -> None:
    registry = WorkerRegistry()
    with pytest.raises(ValidationError) as info:
        registry.route_queue("q", "Nope")
    assert info.value.reason == "No worker factory registered for engine 'nope'"


async def test_metadata_engine_overrides_the_queue_route_case_insensitively() -> None:
    made: list[str] = []

    def factory(tag: str) -> Any:
        def make() -> Echo:
            made.append(tag)
            return Echo(tag)

        return make

    registry = WorkerRegistry().register_engine("A", factory("a")).register_engine("b", factory("b"))
    registry.route_queue("q", "a")
    assert (await registry.process(_job()))["engine"] == "a"
    assert (await registry.process(_job(metadata={"engine": "B"})))["engine"] == "b"
    # A new processor per job.
    assert made == ["a", "b"]
    assert registry.resolve_engine("other", None) is None


def test_unroutable_job_raises_with_the_exact_reason() -> None:
    registry = WorkerRegistry().register_engine("a", lambda: Echo("a"))
    with pytest.raises(UnroutableJob) as info:
        registry.resolve(_job(queue="loose"))
    assert info.value.fail_reason == ("No worker route matched queue 'loose' (metadata.engine or queue route required)")
    with pytest.raises(UnroutableJob, match="No worker factory registered for engine 'ghost'"):
        registry.resolve(_job(metadata={"engine": "ghost"}))


def test_check_queue_needs_a_route_or_some_engine() -> None:
    registry = WorkerRegistry()
    with pytest.raises(ValidationError, match="No worker route matched queue 'q'"):
        registry.check_queue("q")
    registry.register_engine("a", lambda: Echo("a"))
    registry.check_queue("q")  # jobs may name engine "a" in their metadata


# --------------------------------------------------------------------------- registry with an engine


class Boom:
    async def process(self, job: Job) -> None:
        raise RuntimeError("processor exploded")


async def test_dispatch_next_without_a_registry_is_a_validation_error(rq: Any) -> None:
    job_id = await rq.push("q", "n")
    with pytest.raises(ValidationError, match="Worker registry is not configured"):
        await rq.dispatch_next("q")
    assert (await rq.get_job(job_id)).state == "waiting"


async def test_dispatch_next_checks_routing_before_claiming(rq: Any) -> None:
    rq.worker_registry = WorkerRegistry()
    job_id = await rq.push("q", "n")
    with pytest.raises(ValidationError, match="No worker route matched queue 'q'"):
        await rq.dispatch_next("q")
    assert (await rq.get_job(job_id)).state == "waiting"  # never claimed, so never stranded


async def test_dispatch_next_routes_by_queue_then_metadata_and_acks(rq: Any) -> None:
    registry = WorkerRegistry()
    registry.register_engine("a", lambda: Echo("a")).register_engine("b", lambda: Echo("b"))
    rq.worker_registry = registry.route_queue("q", "a")
    by_route = await rq.push("q", "n")
    by_metadata = await rq.push("q", "n", metadata={"engine": "B"})
    assert await rq.dispatch_next("q") == by_route
    assert await rq.dispatch_next("q") == by_metadata
    assert await rq.dispatch_next("q") is None
    assert (await rq.get_job(by_route)).result == {"engine": "a", "job": by_route}
    job = await rq.get_job(by_metadata)
    assert (job.state, job.result) == ("completed", {"engine": "b", "job": by_metadata})


async def test_unroutable_claimed_job_is_failed_not_left_active(rq: Any) -> None:
    rq.worker_registry = WorkerRegistry().register_engine("a", lambda: Echo("a"))  # no route for "loose"
    job_id = await rq.push("loose", "n", max_attempts=1)
    with pytest.raises(UnroutableJob):
        await rq.dispatch_next("loose")
    job = await rq.get_job(job_id)
    assert job.state == "dlq"
    assert job.last_error == "No worker route matched queue 'loose' (metadata.engine or queue route required)"


async def test_processor_error_fails_the_job_and_is_re_raised(rq: Any) -> None:
    rq.worker_registry = WorkerRegistry().register_engine("boom", Boom).route_queue("q", "boom")
    job_id = await rq.push("q", "n", max_attempts=3)
    with pytest.raises(RuntimeError, match="processor exploded"):
        await rq.dispatch_next("q")
    job = await rq.get_job(job_id)
    assert job.state in ("delayed", "waiting")
    assert (job.attempt, job.last_error) == (1, "RuntimeError: processor exploded")


async def test_run_worker_with_a_registry_routes_and_fails_unroutable_jobs(engine_factory: Any) -> None:
    from rustqueue_core.settings import EngineSettings

    rq = await engine_factory(settings=EngineSettings(housekeeping=False))
    registry = WorkerRegistry().register_engine("a", lambda: Echo("a"))
    routed = await rq.push("q", "n", metadata={"engine": "a"})
    stray = await rq.push("q", "n", max_attempts=1)
    stop = asyncio.Event()
    worker = asyncio.create_task(rq.run_worker("q", registry, shutdown=stop, poll_interval=0.05))
    try:
        for _ in range(250):
            states = {(await rq.get_job(i)).state for i in (routed, stray)}
            if states <= {"completed", "dlq"}:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
    await asyncio.wait_for(worker, 5)
    assert (await rq.get_job(routed)).result == {"engine": "a", "job": routed}
    stray_job = await rq.get_job(stray)
    assert stray_job.state == "dlq"
    assert stray_job.last_error == ("No worker route matched queue 'q' (metadata.engine or queue route required)")


async def test_run_worker_refuses_a_registry_that_can_never_route_the_queue(rq: Any) -> None:
    with pytest.raises(ValidationError, match="No worker route matched queue 'q'"):
        await rq.run_worker("q", WorkerRegistry())
