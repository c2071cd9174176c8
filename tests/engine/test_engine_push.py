"""Push pipeline: validation, options, defaults chain, batches, before_push (SEMANTICS §1.7, §2.3)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from rustqueue_core.errors import DuplicateKey, RateLimited, ValidationError
from rustqueue_core.models import JobDefaults, NewJob, Principal, QueueConfig
from rustqueue_core.settings import EngineSettings

QUEUE_MSG = (
    "Validation error: Queue name must be non-empty and contain only alphanumeric characters, dashes, "
    "underscores, or dots"
)


async def test_queue_name_rules(rq: Any) -> None:
    for bad in ("", "a b", "x" * 257):
        with pytest.raises(ValidationError):
            await rq.push(bad, "job")
    with pytest.raises(ValidationError) as info:
        await rq.push("a b", "job")
    assert info.value.message == QUEUE_MSG
    with pytest.raises(ValidationError) as info:
        await rq.push("x" * 257, "job")
    assert info.value.message == "Validation error: Queue name exceeds maximum length of 256 bytes"
    assert await rq.push("a-b_c.d", "job")
    assert await rq.push("x" * 256, "job")
    with pytest.raises(ValidationError, match="Job name exceeds maximum length of 1024 bytes"):
        await rq.push("q", "n" * 1025)
    assert [q.name for q in await rq.queues()] == sorted(["a-b_c.d", "x" * 256])


async def test_data_and_metadata_limits(rq: Any) -> None:
    # '"' + 1048574 chars + '"' = exactly 1 048 576 bytes of compact JSON
    assert await rq.push("q", "j", "a" * 1_048_574)
    with pytest.raises(ValidationError, match=r"Job data payload \(1048577 bytes\) exceeds maximum of 1048576"):
        await rq.push("q", "j", "a" * 1_048_575)
    with pytest.raises(ValidationError, match="Job metadata"):
        await rq.push("q", "j", {}, metadata={"x": "a" * 65_536})
    with pytest.raises(ValidationError, match="Unique key exceeds maximum length of 1024 bytes"):
        await rq.push("q", "j", {}, unique_key="k" * 1025)
    counts = await rq.counts("q")
    assert counts.waiting == 1


async def test_priority_validation_and_range(rq: Any) -> None:
    with pytest.raises(ValidationError):
        await rq.push("q", "j", priority=True)
    with pytest.raises(ValidationError):
        await rq.push("q", "j", priority="high")
    low = await rq.push("q", "j", priority=-(2**63))
    high = await rq.push("q", "j", priority=2**64 - 1)
    with pytest.raises(ValidationError):
        await rq.push("q", "j", priority=2**64)
    jobs = await rq.claim("q", 2)
    assert [j.id for j in jobs] == [high, low]
    await rq.create_queue("t", priority_kind="text")
    with pytest.raises(ValidationError):
        await rq.push("t", "j", priority=5)


async def test_push_returns_uuid7_and_applies_options(rq: Any) -> None:
    job_id = await rq.push(
        "q",
        "j",
        {"a": 1},
        custom_id="c-1",
        tags=["x", "y"],
        group_id="g",
        max_attempts=7,
        backoff="linear",
        backoff_delay_ms=5,
        timeout_ms=100,
        ttl_ms=60_000,
        flow_id="f",
    )
    parsed = uuid.UUID(job_id)
    assert parsed.version == 7 and str(parsed) == job_id
    job = await rq.get_job(job_id)
    assert (job.custom_id, job.tags, job.group_id, job.flow_id) == ("c-1", ["x", "y"], "g", "f")
    assert (job.max_attempts, job.backoff, job.backoff_delay_ms, job.timeout_ms) == (7, "linear", 5, 100)
    assert job.state == "waiting" and job.data == {"a": 1} and job.priority == 0
    assert job.expires_at is not None


async def test_delay(rq: Any, manual_clock: Any) -> None:
    delayed = await rq.push("q", "j", delay_ms=5000)
    now_id = await rq.push("q", "j", delay_ms=0)
    assert (await rq.get_job(delayed)).state == "delayed"
    assert (await rq.get_job(now_id)).state == "waiting"
    claimed = await rq.claim("q", 5)
    assert [j.id for j in claimed] == [now_id]
    manual_clock.advance(5)
    await rq.tick()
    assert [j.id for j in await rq.claim("q", 5)] == [delayed]


async def test_unknown_option_rejected(rq: Any) -> None:
    with pytest.raises(ValidationError, match="Unknown job option 'colour'"):
        await rq.push("q", "j", colour="red")


async def test_defaults_chain(engine_factory: Any) -> None:
    settings = EngineSettings(
        housekeeping=False, job_defaults=JobDefaults(max_attempts=9, backoff="fixed", timeout_ms=50)
    )
    rq = await engine_factory(settings=settings)
    await rq.create_queue("q", job_defaults={"max_attempts": 5})
    option = await rq.get_job(await rq.push("q", "j", max_attempts=2))
    queue_default = await rq.get_job(await rq.push("q", "j"))
    server_default = await rq.get_job(await rq.push("other", "j"))
    assert option.max_attempts == 2
    assert queue_default.max_attempts == 5 and queue_default.backoff == "fixed"
    assert server_default.max_attempts == 9 and server_default.timeout_ms == 50
    plain = await engine_factory(settings=EngineSettings(housekeeping=False))
    job = await plain.get_job(await plain.push("q", "j"))
    assert (job.max_attempts, job.backoff, job.backoff_delay_ms, job.timeout_ms, job.ttl_ms) == (
        3,
        "exponential",
        1000,
        None,
        None,
    )


async def test_batch(rq: Any) -> None:
    ids = await rq.push_batch("q", [{"name": "a"}, {"name": "b", "data": 2}, NewJob(queue="", name="c")])
    assert len(ids) == 3
    jobs = await rq.get_jobs(ids)
    assert [j.name for j in jobs] == ["a", "b", "c"]
    assert jobs[1].data == 2 and jobs[0].data == {}
    assert await rq.push_batch("q", []) == []
    with pytest.raises(ValidationError) as info:
        await rq.push_batch("q", [{"name": "ok"}, {"name": "bad name"}])
    assert info.value.index == 1 and "item 1" in info.value.message
    with pytest.raises(DuplicateKey) as dup:
        await rq.push_batch("q", [{"name": "a", "unique_key": "k"}, {"name": "b", "options": {"unique_key": "k"}}])
    assert dup.value.index == 1
    assert (await rq.counts("q")).waiting == 3


async def test_batch_with_dependencies(rq: Any) -> None:
    parent = await rq.push("q", "p")
    ids = await rq.push_batch("q", [{"name": "c1", "depends_on": [parent]}, {"name": "c2"}])
    jobs = await rq.get_jobs(ids)
    assert [j.state for j in jobs] == ["blocked", "waiting"]
    with pytest.raises(ValidationError) as info:
        await rq.push_batch("q", [{"name": "c"}, {"name": "c", "depends_on": [str(uuid.uuid4())]}])
    assert info.value.index == 1


async def test_before_push_hook(engine_factory: Any) -> None:
    class Host:
        has_before_push = True
        has_jobs_changed = False
        calls: list[int] = []

        def before_push(self, jobs: Sequence[NewJob], principal: Principal | None) -> None:
            self.calls.append(len(jobs))
            for job in jobs:
                if job.name == "reject":
                    raise RuntimeError("no")
                job.options.metadata = {"trace": "t1"}

    host = Host()
    rq = await engine_factory(settings=EngineSettings(housekeeping=False), host=host)
    ids = await rq.push_batch("q", [{"name": "a"}, {"name": "b"}])
    assert host.calls == [2]
    assert [j.metadata for j in await rq.get_jobs(ids)] == [{"trace": "t1"}, {"trace": "t1"}]
    with pytest.raises(RuntimeError):
        await rq.push_batch("q", [{"name": "a"}, {"name": "reject"}])
    assert (await rq.counts("q")).waiting == 2


async def test_rate_limit(rq: Any, manual_clock: Any) -> None:
    await rq.create_queue("q", rate_limit_per_second=2.0, rate_limit_burst=2)
    await rq.push("q", "j")
    await rq.push("q", "j")
    with pytest.raises(RateLimited) as info:
        await rq.push("q", "j")
    assert info.value.retry_after_ms > 0
    await rq.push("other", "j")
    manual_clock.advance(0.5)
    await rq.push("q", "j")
    stats = (await rq.stats("q"))[0]
    assert stats.rate_limited == 1


async def test_rate_limit_batches_and_refunds(rq: Any, manual_clock: Any) -> None:
    await rq.create_queue("q", rate_limit_per_second=1.0, rate_limit_burst=2)
    with pytest.raises(RateLimited, match="exceeds the burst"):
        await rq.push_batch("q", [{"name": "a"}] * 3)
    await rq.push("q", "a", unique_key="k")
    with pytest.raises(DuplicateKey):
        await rq.push("q", "b", unique_key="k")
    # the duplicate's token came back: one more push fits
    await rq.push("q", "c")
    with pytest.raises(RateLimited):
        await rq.push_batch("q", [{"name": "a"}, {"name": "b"}])
    manual_clock.advance(2)
    assert len(await rq.push_batch("q", [{"name": "a"}, {"name": "b"}])) == 2


async def test_paused_queue_rejects_pushes(rq: Any) -> None:
    from rustqueue_core.errors import QueuePaused

    await rq.push("q", "before")
    await rq.pause_queue("q")
    with pytest.raises(QueuePaused):
        await rq.push("q", "j")
    with pytest.raises(QueuePaused):
        await rq.push_batch("q", [{"name": "j"}])
    assert len(await rq.claim("q")) == 1  # claims continue
    infos = {q.name: q for q in await rq.queues()}
    assert infos["q"].paused
    await rq.resume_queue("q")
    await rq.push("q", "j")
    config: QueueConfig = await rq.get_queue_config("q")
    assert not config.paused


async def test_prepare_push_defers_effects_until_committed(rq: Any) -> None:
    """The transactional-enqueue seam: nothing is visible or counted until the caller commits; an
    abandoned push gives its rate tokens back."""
    from rustqueue_core.models import NewJob

    await rq.configure_queue("tx", rate_limit_per_second=1.0, rate_limit_burst=1)
    prepared = await rq.prepare_push([NewJob(queue="tx", name="a", data={})])
    assert [job.queue for job in prepared.jobs] == ["tx"]
    prepared.abandoned()  # the caller's transaction rolled back: the token comes back
    again = await rq.prepare_push([NewJob(queue="tx", name="b", data={})])
    await rq.storage.insert_jobs(again.jobs, again.now)
    assert (await rq.stats("tx"))[0].published == 0
    again.committed()
    again.committed()  # idempotent
    assert (await rq.stats("tx"))[0].published == 1
    assert [job.id for job in await rq.claim("tx", 5)] == again.ids
