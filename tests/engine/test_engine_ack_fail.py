"""Ack, fail, backoff, DLQ, nack, release (SEMANTICS §2.6, §2.7)."""

from __future__ import annotations

from typing import Any

import pytest

from rustqueue_core.delivery import backoff_delay_ms
from rustqueue_core.errors import InvalidState, JobNotFound, LeaseLost, ValidationError
from rustqueue_core.models import Job


async def test_ack(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j")
    with pytest.raises(InvalidState) as info:
        await rq.ack(job_id)
    assert info.value.message == "Job is in invalid state 'Waiting' for operation (expected: Active)"
    with pytest.raises(JobNotFound):
        await rq.ack("01900000-0000-7000-8000-000000000000")
    await rq.claim("q")
    done = await rq.ack(job_id, {"ok": 1})
    assert done.state == "completed" and done.result == {"ok": 1}
    assert done.completed_at == manual_clock.now() and done.lease_token is None
    counts = await rq.counts("q")
    assert (counts.waiting, counts.completed) == (0, 1)


async def test_ack_wrong_token(rq: Any) -> None:
    await rq.push("q", "j")
    job = (await rq.claim("q"))[0]
    with pytest.raises(LeaseLost):
        await rq.ack(job.id, token="nope")
    assert (await rq.get_job(job.id)).state == "active"
    await rq.ack(job.id, token=job.lease_token)


async def test_ack_batch(rq: Any) -> None:
    await rq.push_batch("q", [{"name": "a"}, {"name": "b"}])
    jobs = await rq.claim("q", 2)
    result = await rq.ack_batch(
        [jobs[0].id, ("01900000-0000-7000-8000-000000000000", None), {"id": jobs[1].id, "result": 5}]
    )
    assert (result.ok, result.failed) == (2, 1)
    assert [r.error_code for r in result.results] == [None, "JOB_NOT_FOUND", None]
    assert (await rq.get_job(jobs[1].id)).result == 5


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [("exponential", [1000, 2000, 4000, 8000]), ("linear", [1000, 2000, 3000, 4000]), ("fixed", [1000] * 4)],
)
def test_backoff_formulas(backoff: str, expected: list[int]) -> None:
    job = Job(id="x", name="n", queue="q", created_at=None, updated_at=None, backoff=backoff)  # type: ignore[arg-type]
    assert [backoff_delay_ms(job, n, 10**12) for n in (1, 2, 3, 4)] == expected
    assert backoff_delay_ms(job, 2**32 - 1, 604_800_000) <= 604_800_000


async def test_fail_retries_then_dlq(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j")
    delays = []
    for _ in range(2):
        job = (await rq.claim("q"))[0]
        result = await rq.fail(job.id, "boom")
        assert result.will_retry
        delays.append((result.next_attempt_at - manual_clock.now()).total_seconds())
        assert await rq.claim("q") == []
        manual_clock.advance(10)
        await rq.tick()
    assert delays == [1.0, 2.0]
    await rq.claim("q")
    final = await rq.fail(job_id, "last")
    assert not final.will_retry
    job = await rq.get_job(job_id)
    assert (job.state, job.attempt, job.last_error) == ("dlq", 3, "last")


async def test_zero_backoff_and_single_attempt(rq: Any) -> None:
    job_id = await rq.push("q", "j", backoff_delay_ms=0)
    await rq.claim("q")
    result = await rq.fail(job_id, "x")
    assert result.will_retry and result.next_attempt_at is None
    assert (await rq.get_job(job_id)).state == "waiting"
    ids = []
    for attempts in (0, 1):
        ids.append(await rq.push("d", "j", max_attempts=attempts))
    for job_id in ids:
        await rq.claim("d")
        assert not (await rq.fail(job_id, "bad")).will_retry
    dead = await rq.dlq("d")
    assert [j.id for j in dead] == list(reversed(ids))
    assert len(await rq.dlq("d", limit=1)) == 1 and await rq.dlq("d", limit=0) == []


async def test_retry_delay_override_and_dead(rq: Any, manual_clock: Any) -> None:
    a = await rq.push("q", "a")
    await rq.claim("q")
    result = await rq.fail(a, "x", retry_delay_ms=50)
    assert (result.next_attempt_at - manual_clock.now()).total_seconds() == 0.05
    b = await rq.push("q", "b")
    await rq.claim("q")
    assert not (await rq.fail(b, "x", dead=True)).will_retry
    assert (await rq.get_job(b)).state == "dlq"


async def test_fail_error_size_checked_first(rq: Any) -> None:
    job_id = await rq.push("q", "j")
    with pytest.raises(ValidationError, match=r"Error message \(10241 bytes\) exceeds maximum of 10240 bytes"):
        await rq.fail(job_id, "e" * 10_241)
    with pytest.raises(InvalidState):
        await rq.fail(job_id, "e")


async def test_nack(rq: Any) -> None:
    job_id = await rq.push("q", "j", max_attempts=2)
    await rq.claim("q")
    result = await rq.nack(job_id)
    job = await rq.get_job(job_id)
    assert result.will_retry and job.state == "waiting" and job.attempt == 1 and job.last_error == "nacked"
    await rq.claim("q")
    assert not (await rq.nack(job_id, reason="again")).will_retry
    assert (await rq.get_job(job_id)).state == "dlq"
    other = await rq.push("q", "k")
    await rq.claim("q")
    await rq.nack(other, requeue=False)
    assert (await rq.get_job(other)).state == "dlq"


async def test_nack_batch(rq: Any) -> None:
    ids = await rq.push_batch("q", [{"name": "a", "max_attempts": 1}, {"name": "b"}])
    await rq.claim("q", 2)
    result = await rq.nack_batch([*ids, "01900000-0000-7000-8000-000000000000"])
    assert (result.requeued, result.dead, result.failed) == (1, 1, 1)


async def test_release_and_events(rq: Any) -> None:
    events: list[Any] = []
    rq.add_listener(events.extend)
    job_id = await rq.push("q", "j")
    await rq.claim("q")
    await rq.release(job_id)
    job = await rq.get_job(job_id)
    assert job.state == "waiting" and job.attempt == 0 and job.lease_token is None
    await rq.claim("q")
    await rq.fail(job_id, "x")
    kinds = [e.kind for e in events]
    assert kinds == ["job.pushed", "job.claimed", "job.released", "job.claimed", "job.retrying"]


async def test_ack_result_size_limit(rq: Any) -> None:
    job_id = await rq.push("q", "j")
    await rq.claim("q")
    with pytest.raises(ValidationError, match="Job result payload"):
        await rq.ack(job_id, "r" * 1_048_575)
    batch = await rq.ack_batch([{"id": job_id, "result": "r" * 1_048_575}])
    assert batch.results[0].error_code == "VALIDATION_ERROR"
    assert (await rq.get_job(job_id)).state == "active"
    assert (await rq.ack(job_id, "r" * 1_048_574)).state == "completed"
