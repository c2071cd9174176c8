"""DAG flows, cascades, reconciliation, follow-ups (SEMANTICS §2.10, §2.11)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from rustqueue_core.errors import ValidationError
from rustqueue_core.settings import EngineSettings, RetentionSettings
from rustqueue_core.storage import Change


async def claim_ack(rq: Any, queue: str, result: Any = None) -> str:
    job = (await rq.claim(queue))[0]
    await rq.ack(job.id, result)
    return job.id


async def test_chain_unblocks_step_by_step(rq: Any) -> None:
    events: list[Any] = []
    rq.add_listener(events.extend)
    a = await rq.push("q", "a")
    b = await rq.push("q", "b", depends_on=[a])
    c = await rq.push("q", "c", depends_on=[b, b])
    assert (await rq.get_job(c)).depends_on == [b]
    assert [j.state for j in await rq.get_jobs([a, b, c])] == ["waiting", "blocked", "blocked"]
    await claim_ack(rq, "q")
    assert [j.state for j in await rq.get_jobs([b, c])] == ["waiting", "blocked"]
    await claim_ack(rq, "q")
    assert (await rq.get_job(c)).state == "waiting"
    assert [e.job_id for e in events if e.kind == "job.unblocked"] == [b, c]


async def test_parent_rules(rq: Any) -> None:
    done = await rq.push("q", "p")
    await claim_ack(rq, "q")
    child = await rq.push("q", "c", depends_on=[done])
    assert (await rq.get_job(child)).state == "waiting"
    with pytest.raises(ValidationError, match="not found"):
        await rq.push("q", "c", depends_on=[str(uuid.uuid4())])
    dead = await rq.push("d", "x", max_attempts=1)
    await rq.claim("d")
    await rq.fail(dead, "x")
    with pytest.raises(ValidationError, match="terminal state 'Dlq'"):
        await rq.push("q", "c", depends_on=[dead])


async def test_depth_limit(engine_factory: Any) -> None:
    rq = await engine_factory(settings=EngineSettings(housekeeping=False, max_dag_depth=5))
    chain = [await rq.push("q", "root")]
    for _ in range(4):
        chain.append(await rq.push("q", "n", depends_on=[chain[-1]]))
    assert await rq.push("q", "ok", depends_on=[chain[-1]])  # 5 pending ancestors
    sixth = await rq.push("other", "n", depends_on=[chain[-1]])
    with pytest.raises(ValidationError, match="Dependency chain exceeds maximum depth of 5"):
        await rq.push("q", "bad", depends_on=[sixth])
    await claim_ack(rq, "q")  # root completes: no longer counted
    assert await rq.push("q", "ok2", depends_on=[sixth])


async def test_dlq_cascade(rq: Any) -> None:
    parent = await rq.push("q", "p", max_attempts=1)
    child = await rq.push("q", "c", depends_on=[parent])
    grand = await rq.push("q", "g", depends_on=[child])
    await rq.claim("q")
    await rq.fail(parent, "x")
    jobs = await rq.get_jobs([child, grand])
    assert [j.state for j in jobs] == ["dlq", "dlq"]
    assert jobs[0].last_error == f"parent job '{parent}' moved to DLQ"
    assert jobs[1].last_error == f"parent job '{child}' moved to DLQ"


async def test_delayed_child_unblocked_into_delayed(rq: Any, manual_clock: Any) -> None:
    parent = await rq.push("q", "p")
    child = await rq.push("q", "c", depends_on=[parent], delay_ms=60_000)
    await claim_ack(rq, "q")
    assert (await rq.get_job(child)).state == "delayed"
    manual_clock.advance(61)
    await rq.tick()
    assert (await rq.get_job(child)).state == "waiting"


async def test_two_parents(rq: Any) -> None:
    a = await rq.push("q", "a")
    b = await rq.push("q", "b")
    child = await rq.push("c", "child", depends_on=[a, b])
    events: list[Any] = []
    rq.add_listener(events.extend)
    jobs = await rq.claim("q", 2)
    await rq.ack_batch([j.id for j in jobs])
    assert (await rq.get_job(child)).state == "waiting"
    assert [e.job_id for e in events if e.kind == "job.unblocked"] == [child]


async def test_reconciliation_repairs_missed_unblock(rq: Any, manual_clock: Any) -> None:
    parent = await rq.push("q", "p")
    child = await rq.push("q", "c", depends_on=[parent])
    await rq.claim("q")
    # Simulate a crash between the ack's commit and the unblock: complete in storage directly.
    from rustqueue_core.storage import CompleteItem

    await rq.storage.complete([CompleteItem(id=parent)], manual_clock.now())
    assert (await rq.get_job(child)).state == "blocked"
    manual_clock.advance(11)
    await rq.tick()
    assert (await rq.get_job(child)).state == "waiting"


async def test_reconciliation_cascades_missing_parent(rq: Any, manual_clock: Any) -> None:
    parent = await rq.push("q", "p")
    child = await rq.push("q", "c", depends_on=[parent])
    await rq.storage.delete_jobs([parent])
    manual_clock.advance(11)
    await rq.tick()
    job = await rq.get_job(child)
    assert job.state == "dlq" and job.last_error == f"parent job '{parent}' was deleted"


async def test_remove_on_complete_keeps_parent_until_children_unblocked(rq: Any) -> None:
    parent = await rq.push(
        "q",
        "p",
        remove_on_complete=True,
        metadata={"follow_ups": [{"queue": "next", "name": "f"}]},
    )
    child = await rq.push("q", "c", depends_on=[parent])
    await claim_ack(rq, "q", {"r": 1})
    assert await rq.get_job(parent) is None
    assert (await rq.get_job(child)).state == "waiting"
    follow = (await rq.claim("next"))[0]
    assert follow.data == {"r": 1} and follow.depends_on == [parent]


async def test_retention_keeps_parent_with_blocked_child(engine_factory: Any, manual_clock: Any) -> None:
    settings = EngineSettings(housekeeping=False, retention=RetentionSettings(completed_ttl_ms=1000))
    rq = await engine_factory(clock=manual_clock, settings=settings)
    a = await rq.push("q", "a")
    other = await rq.push("q", "other")
    child = await rq.push("q", "c", depends_on=[a, other])
    first = (await rq.claim("q"))[0]
    assert first.id == a
    await rq.ack(a)
    lone = await rq.push("z", "lone")
    await claim_ack(rq, "z")
    manual_clock.advance(120)
    await rq.tick()
    assert await rq.get_job(a) is not None
    assert await rq.get_job(lone) is None
    assert (await rq.get_job(child)).state == "blocked"


async def test_flow_summary(rq: Any) -> None:
    a = await rq.push("q", "a", flow_id="f1")
    await rq.push("q", "b", flow_id="f1", depends_on=[a])
    await rq.push("r", "c", flow_id="f1", depends_on=[a])
    info = await rq.flow("f1")
    assert len(info.jobs) == 3
    assert (info.summary["total"], info.summary["waiting"], info.summary["blocked"]) == (3, 1, 2)


async def test_follow_ups(rq: Any) -> None:
    parent = await rq.push(
        "q",
        "p",
        flow_id="fl",
        metadata={
            "trace": "t",
            "follow_ups": [
                {"queue": "n1", "name": "with-data", "data": {"x": 1}},
                {"queue": "n2", "name": "no-data"},
                {"queue": "bad queue", "name": "x"},
            ],
        },
    )
    await claim_ack(rq, "q", {"result": True})
    first = (await rq.claim("n1"))[0]
    second = (await rq.claim("n2"))[0]
    assert first.data == {"x": 1} and second.data == {"result": True}
    assert first.depends_on == [parent] and first.flow_id == "fl"
    assert first.metadata == {"trace": "t"}
    logs = [entry.message for entry in (await rq.get_job(parent)).logs]
    assert any(m.startswith("follow-up 2 to bad queue rejected: VALIDATION_ERROR") for m in logs)


async def test_malformed_follow_ups_and_paused_target(rq: Any) -> None:
    bad = await rq.push("q", "p", metadata={"follow_ups": "nope"})
    await claim_ack(rq, "q")
    assert (await rq.get_job(bad)).state == "completed"
    assert "follow_ups ignored" in (await rq.get_job(bad)).logs[-1].message
    await rq.pause_queue("paused")
    parent = await rq.push("q", "p", metadata={"follow_ups": [{"queue": "paused", "name": "x"}]})
    await claim_ack(rq, "q")
    assert (await rq.get_job(parent)).state == "completed"
    assert "QUEUE_PAUSED" in (await rq.get_job(parent)).logs[-1].message
    assert (await rq.counts("paused")).waiting == 0


async def test_follow_ups_of_job_claimed_by_another_instance(storage_factory: Any, engine_factory: Any) -> None:
    storage = await storage_factory()
    settings = EngineSettings(housekeeping=False)
    first = await engine_factory(settings=settings, storage=storage)
    second = await engine_factory(settings=settings, storage=storage)
    await first.push("q", "p", metadata={"follow_ups": [{"queue": "n", "name": "f"}]})
    job = (await second.claim("q"))[0]
    await first.ack(job.id, 7)
    assert [j.data for j in await first.claim("n")] == [7]


async def test_transition_cas(rq: Any, manual_clock: Any) -> None:
    job_id = await rq.push("q", "j")
    [outcome] = await rq.storage.transition(
        [Change(id=job_id, expected=frozenset({"active"}), updates={"state": "dlq"})], manual_clock.now()
    )
    assert outcome.outcome == "state:waiting"


async def test_deferred_remove_on_complete(rq: Any, manual_clock: Any) -> None:
    removable = await rq.push("q", "r", remove_on_complete=True)
    other = await rq.push("q", "o")
    keeper = await rq.push("k", "keep")
    child = await rq.push("c", "child", depends_on=[removable, other])
    job = (await rq.claim("q"))[0]
    assert job.id == removable
    await rq.ack(removable)
    assert (await rq.get_job(removable)).state == "completed"  # its child is still blocked
    await claim_ack(rq, "q")
    await claim_ack(rq, "k")
    assert (await rq.get_job(child)).state == "waiting"
    manual_clock.advance(11)
    await rq.tick()
    assert await rq.get_job(removable) is None
    assert (await rq.get_job(keeper)).state == "completed"
