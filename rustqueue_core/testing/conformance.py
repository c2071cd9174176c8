"""``StorageConformance``: the storage contract (SEMANTICS §5.2/§5.3, checklist lines marked S).

Subclass it in a test module that provides a ``storage_factory`` fixture (the plugin's own fixture
works): ``await storage_factory()`` must return a fresh, opened, empty storage.

    class TestMyStorage(StorageConformance):
        pass
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rustqueue_core.models import Capabilities, LogEntry, QueueConfig, QueueCounts
from rustqueue_core.storage import (
    LEASE_LOST,
    NOT_FOUND,
    OK,
    Change,
    CompleteItem,
    InsertConflict,
    state_mismatch,
)
from rustqueue_core.testing.conformance_queries import StorageQueryConformance
from rustqueue_core.testing.jobs import T0, at, make_job, make_jobs, replace

ACTIVE = frozenset({"active"})


async def _claim(storage: Any, queue: str = "q", n: int = 1, now: Any = T0, **kw: Any) -> list[Any]:
    kw.setdefault("consumer_id", "w1")
    kw.setdefault("lease_ms", 30_000)
    jobs: list[Any] = await storage.claim(queue, n, now, **kw)
    return jobs


class StorageConformance(StorageQueryConformance):
    """Contract tests every storage backend passes. Needs a ``storage_factory`` fixture."""

    pytestmark = [pytest.mark.asyncio]

    # ------------------------------------------------------------------ model
    async def test_insert_get_round_trips_every_field(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        full = make_job(
            "q",
            7,
            custom_id="order-1",
            data={"nested": [1, 2.5, "x", None, {"k": True}]},
            result={"r": 1},
            state="waiting",
            progress=40,
            logs=[LogEntry(timestamp=at(1.000001), message="hello")],
            priority=-17,
            delay_until=at(5),
            updated_at=at(2),
            started_at=at(3),
            completed_at=at(4),
            max_attempts=7,
            attempt=2,
            backoff="linear",
            backoff_delay_ms=250,
            last_error="boom",
            ttl_ms=60_000,
            timeout_ms=5_000,
            unique_key="u-1",
            tags=["a", "b"],
            group_id="g",
            metadata={"m": [1]},
            depends_on=["p1", "p2"],
            flow_id="f",
            lifo=True,
            remove_on_complete=True,
            remove_on_fail=True,
            worker_id="w",
            last_heartbeat=at(3.5),
            deliveries=3,
            lease_token="t" * 32,
            lease_expires_at=at(30),
            lease_ms=27_000,
            expires_at=at(60),
            deadline_at=at(8),
            sort_key=b"\x00\xff\x10binary",
        )
        text = make_job("q", 8, priority="zz-top")
        huge = make_job("q", 9, priority=2**64 - 1)
        lowest = make_job("q", 10, priority=-(2**63))
        await storage.insert_jobs([full, text, huge, lowest], T0)
        assert await storage.get_jobs([full.id, text.id, huge.id, lowest.id]) == [full, text, huge, lowest]

    async def test_defaults_round_trip(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        job = make_job()
        await storage.insert_jobs([job], T0)
        (got,) = await storage.get_jobs([job.id])
        assert got == job
        assert (got.state, got.priority, got.max_attempts, got.data, got.tags) == ("waiting", 0, 3, {}, [])

    async def test_explicit_null_data_is_kept(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        job = make_job(data=None)
        await storage.insert_jobs([job], T0)
        assert (await storage.get_jobs([job.id]))[0].data is None

    async def test_get_unknown_ids_gives_none_in_input_order(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        job = make_job()
        await storage.insert_jobs([job], T0)
        got = await storage.get_jobs(["missing", job.id, "other"])
        assert got[0] is None and got[2] is None
        assert got[1] is not None and got[1].id == job.id
        assert await storage.get_jobs([]) == []

    async def test_delete_is_idempotent(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        job, keep = make_jobs(2)
        await storage.insert_jobs([job, keep], T0)
        deleted = await storage.delete_jobs([job.id, "missing"])
        assert [j.id for j in deleted] == [job.id]
        assert await storage.delete_jobs([job.id]) == []
        assert await storage.get_jobs([job.id, keep.id]) == [None, keep]

    async def test_open_and_close_are_idempotent(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.open()
        job = make_job()
        await storage.insert_jobs([job], T0)
        await storage.close()
        await storage.close()

    async def test_insert_is_all_or_nothing_on_a_bad_item(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        first = make_job(unique_key="k")
        await storage.insert_jobs([first], T0)
        batch = [make_job(rank=1), make_job(rank=2, unique_key="k"), make_job(rank=3)]
        with pytest.raises(InsertConflict) as info:
            await storage.insert_jobs(batch, T0)
        assert (info.value.index, info.value.key, info.value.holder_id) == (1, "k", first.id)
        assert await storage.get_jobs([j.id for j in batch]) == [None, None, None]

    # ------------------------------------------------------------------ transition
    async def test_transition_persists_and_sets_updated_at(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        job = make_job()
        await storage.insert_jobs([job], T0)
        (out,) = await storage.transition(
            [
                Change(
                    id=job.id,
                    expected=frozenset({"waiting"}),
                    updates={"state": "cancelled", "last_error": "x"},
                )
            ],
            at(1),
        )
        assert out.outcome == OK and out.job is not None and out.job.state == "cancelled"
        (got,) = await storage.get_jobs([job.id])
        assert (got.state, got.last_error, got.updated_at) == ("cancelled", "x", at(1))

    async def test_transition_on_wrong_state_changes_nothing(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        job = make_job()
        await storage.insert_jobs([job], T0)
        outcomes = await storage.transition(
            [
                Change(id=job.id, expected=ACTIVE, updates={"state": "completed"}),
                Change(id="missing", expected=ACTIVE, updates={"state": "completed"}),
            ],
            at(1),
        )
        assert [o.outcome for o in outcomes] == [state_mismatch("waiting"), NOT_FOUND]
        assert outcomes[0].job is None
        assert await storage.get_jobs([job.id]) == [job]

    async def test_transition_fences_on_lease_token_and_consumer(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.insert_jobs([make_job()], T0)
        (claimed,) = await _claim(storage, consumer_id="c1")
        bad = await storage.transition(
            [
                Change(id=claimed.id, expected=ACTIVE, updates={"progress": 5}, lease_token="f" * 32),
                Change(id=claimed.id, expected=ACTIVE, updates={"progress": 6}, consumer_id="c2"),
            ],
            at(1),
        )
        assert [o.outcome for o in bad] == [LEASE_LOST, LEASE_LOST]
        (good,) = await storage.transition(
            [
                Change(
                    id=claimed.id,
                    expected=ACTIVE,
                    updates={"progress": 7},
                    lease_token=claimed.lease_token,
                    consumer_id="c1",
                )
            ],
            at(1),
        )
        assert good.outcome == OK and good.job is not None and good.job.progress == 7

    async def test_transition_batch_items_are_independent(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        a, b = make_jobs(2)
        await storage.insert_jobs([a, b], T0)
        outcomes = await storage.transition(
            [
                Change(id=a.id, expected=ACTIVE, updates={"state": "completed"}),
                Change(id=b.id, expected=frozenset({"waiting"}), updates={"state": "cancelled"}),
            ],
            at(1),
        )
        assert [o.outcome for o in outcomes] == [state_mismatch("waiting"), OK]
        assert [j.state for j in await storage.get_jobs([a.id, b.id])] == ["waiting", "cancelled"]

    # ------------------------------------------------------------------ claim
    async def test_claim_follows_sort_key_and_sets_delivery_fields(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        late, early, middle = make_job(rank=30), make_job(rank=10, timeout_ms=2_000), make_job(rank=20)
        await storage.insert_jobs([late, early, middle], T0)
        now = at(10)
        claimed = await _claim(storage, n=2, now=now, consumer_id="w9", lease_ms=15_000)
        assert [j.id for j in claimed] == [early.id, middle.id]
        first = claimed[0]
        assert first.state == "active" and first.started_at == now and first.updated_at == now
        assert first.worker_id == "w9" and first.deliveries == 1 and first.lease_ms == 15_000
        assert first.lease_expires_at == now + timedelta(milliseconds=15_000)
        assert first.deadline_at == now + timedelta(milliseconds=2_000)
        assert claimed[1].deadline_at is None
        assert first.last_heartbeat is None and first.delay_until is None
        assert first.lease_token and len(first.lease_token) >= 32
        assert first.lease_token != claimed[1].lease_token
        assert (await storage.get_jobs([first.id]))[0] == first
        assert [j.id for j in await _claim(storage, n=5)] == [late.id]

    async def test_claim_n_semantics(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.insert_jobs(make_jobs(3), T0)
        assert await _claim(storage, "unknown", 5) == []
        assert await _claim(storage, n=0) == []
        assert len(await _claim(storage, n=5)) == 3
        assert await _claim(storage, n=5) == []

    async def test_claim_clears_heartbeat_and_delay_of_a_retried_job(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        job = make_job(attempt=1, deliveries=1, last_heartbeat=at(-5), worker_id="old")
        await storage.insert_jobs([job], T0)
        (got,) = await _claim(storage, consumer_id="new")
        assert (got.last_heartbeat, got.deliveries, got.worker_id, got.attempt) == (None, 2, "new", 1)

    async def test_claim_skips_expired_and_future_delayed_jobs(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        expired = make_job(rank=1, expires_at=at(5))
        future = make_job(rank=2, state="delayed", delay_until=at(60))
        fresh = make_job(rank=3, expires_at=at(50))
        await storage.insert_jobs([expired, future, fresh], T0)
        assert [j.id for j in await _claim(storage, n=10, now=at(5))] == [fresh.id]

    async def test_claim_takes_due_delayed_jobs_in_order(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        if not storage.capabilities.claims_due_delayed:
            pytest.skip("backend declares no claims_due_delayed")
        due = make_job(rank=1, state="delayed", delay_until=at(5))
        waiting = make_job(rank=2)
        await storage.insert_jobs([waiting, due], T0)
        claimed = await _claim(storage, n=10, now=at(5))
        assert [j.id for j in claimed] == [due.id, waiting.id]
        assert claimed[0].delay_until is None and claimed[0].state == "active"

    async def test_claim_honours_group_limit(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        if not storage.capabilities.group_limits:
            pytest.skip("backend declares no group_limits")
        g1, g2, free = make_job(rank=1, group_id="g"), make_job(rank=2, group_id="g"), make_job(rank=3)
        await storage.insert_jobs([g1, g2, free], T0)
        first = await _claim(storage, n=2, group_limit=1)
        assert [j.id for j in first] == [g1.id, free.id]
        assert await _claim(storage, n=2, group_limit=1) == []
        (done,) = await storage.complete([CompleteItem(id=g1.id)], at(1))
        assert done.outcome == OK
        assert [j.id for j in await _claim(storage, n=2, group_limit=1)] == [g2.id]

    async def test_claim_is_per_queue(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        a, b = make_job("a"), make_job("b")
        await storage.insert_jobs([a, b], T0)
        assert [j.id for j in await _claim(storage, "b", 5)] == [b.id]

    # ------------------------------------------------------------------ complete
    async def test_complete_outcomes_and_fields(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        jobs = make_jobs(3)
        waiting = make_job(rank=9)
        await storage.insert_jobs([*jobs, waiting], T0)
        a, b, c = await _claim(storage, n=3)
        outcomes = await storage.complete(
            [
                CompleteItem(id=a.id, result={"ok": 1}, lease_token=a.lease_token),
                CompleteItem(id=b.id, lease_token="0" * 32),
                CompleteItem(id="missing"),
                CompleteItem(id=waiting.id),
                CompleteItem(id=c.id, consumer_id="w1"),
            ],
            at(2),
        )
        assert [o.outcome for o in outcomes] == [OK, LEASE_LOST, NOT_FOUND, state_mismatch("waiting"), OK]
        done = outcomes[0].job
        assert done is not None and done.state == "completed" and done.result == {"ok": 1}
        assert done.completed_at == at(2) and done.updated_at == at(2)
        assert (done.lease_token, done.lease_expires_at, done.lease_ms, done.deadline_at) == (
            None,
            None,
            None,
            None,
        )
        assert done.last_heartbeat is None and done.worker_id == "w1"
        assert (await storage.get_jobs([a.id]))[0] == done
        assert (await storage.get_jobs([b.id]))[0].state == "active"
        (again,) = await storage.complete([CompleteItem(id=a.id)], at(3))
        assert again.outcome == state_mismatch("completed")

    async def test_batch_complete_by_one_consumer_skips_jobs_another_holds(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.insert_jobs(make_jobs(4), T0)
        mine = await _claim(storage, n=3, consumer_id="w1")
        (theirs,) = await _claim(storage, n=1, consumer_id="w2")
        ids = [mine[0].id, theirs.id, mine[1].id, "missing", mine[2].id]
        outcomes = await storage.complete([CompleteItem(id=i, consumer_id="w1") for i in ids], at(2))
        assert [o.outcome for o in outcomes] == [OK, LEASE_LOST, OK, NOT_FOUND, OK]
        assert [o.id for o in outcomes] == ids
        assert all(o.job is not None and o.job.state == "completed" for o in outcomes if o.outcome == OK)
        stored = await storage.get_jobs([theirs.id, mine[1].id])
        assert [(j.state, j.worker_id) for j in stored] == [("active", "w2"), ("completed", "w1")]

    async def test_complete_inserts_spawned_jobs_and_skips_held_keys(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        holder = make_job("next", 1, unique_key="held")
        parent = make_job("q", 2)
        await storage.insert_jobs([holder, parent], T0)
        (claimed,) = await _claim(storage)
        child = make_job("next", 3, depends_on=[parent.id])
        clash = make_job("next", 4, unique_key="held")
        (out,) = await storage.complete([CompleteItem(id=claimed.id, spawned=[child, clash])], at(1))
        assert out.outcome == OK
        assert out.skipped == [(1, holder.id)]
        assert await storage.get_jobs([child.id, clash.id]) == [child, None]

    async def test_completed_job_is_never_claimed_again(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.insert_jobs(make_jobs(2), T0)
        claimed = await _claim(storage, n=2)
        await storage.complete([CompleteItem(id=j.id) for j in claimed], at(1))
        assert await _claim(storage, n=10, now=at(100)) == []

    # ------------------------------------------------------------------ promote
    async def test_promote_due_returns_only_due_jobs(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        due = make_job("a", 1, state="delayed", delay_until=at(5))
        exact = make_job("b", 2, state="delayed", delay_until=at(10))
        later = make_job("a", 3, state="delayed", delay_until=at(11))
        await storage.insert_jobs([due, exact, later], T0)
        promoted = await storage.promote_due(at(10), 100)
        assert sorted(promoted) == sorted([(due.id, "a"), (exact.id, "b")])
        got = await storage.get_jobs([due.id, later.id])
        assert (got[0].state, got[0].delay_until, got[0].updated_at) == ("waiting", None, at(10))
        assert got[1].state == "delayed"
        assert await storage.promote_due(at(10), 100) == []
        assert len(await storage.promote_due(at(20), 0)) == 0

    # ------------------------------------------------------------------ unique keys
    async def test_unique_key_held_while_unfinished_only(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        first = make_job(unique_key="k")
        await storage.insert_jobs([first], T0)
        with pytest.raises(InsertConflict) as info:
            await storage.insert_jobs([make_job(rank=1, unique_key="k")], T0)
        assert info.value.holder_id == first.id
        other_queue = make_job("other", unique_key="k")
        await storage.insert_jobs([other_queue], T0)  # the scope is (queue, key)
        (claimed,) = await _claim(storage)
        await storage.complete([CompleteItem(id=claimed.id)], at(1))
        reuse = make_job(rank=2, unique_key="k")
        await storage.insert_jobs([reuse], at(1))
        assert (await storage.get_jobs([reuse.id]))[0] is not None

    async def test_unique_key_conflict_within_one_batch(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        a, b = make_job(rank=1, unique_key="dup"), make_job(rank=2, unique_key="dup")
        with pytest.raises(InsertConflict) as info:
            await storage.insert_jobs([a, b], T0)
        assert (info.value.index, info.value.holder_id) == (1, a.id)
        assert await storage.get_jobs([a.id, b.id]) == [None, None]

    async def test_unique_key_freed_by_cancel_and_dlq(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        a, b = make_job("a", unique_key="k"), make_job("b", unique_key="k")
        await storage.insert_jobs([a, b], T0)
        await storage.transition(
            [
                Change(id=a.id, expected=frozenset({"waiting"}), updates={"state": "cancelled"}),
                Change(id=b.id, expected=frozenset({"waiting"}), updates={"state": "dlq"}),
            ],
            at(1),
        )
        await storage.insert_jobs([make_job("a", 1, unique_key="k"), make_job("b", 1, unique_key="k")], at(1))

    # ------------------------------------------------------------------ counts and queues
    async def test_count_jobs_puts_each_state_in_its_column(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        states = ["waiting", "active", "delayed", "completed", "failed", "dlq", "blocked", "cancelled"]
        jobs = [make_job("q", i, state=s, delay_until=at(60) if s == "delayed" else None) for i, s in enumerate(states)]
        await storage.insert_jobs([*jobs, make_job("other", 99)], T0)
        counts = await storage.count_jobs()
        assert counts["q"] == QueueCounts(**{s: 1 for s in states})
        assert counts["other"] == QueueCounts(waiting=1)
        only = await storage.count_jobs(["q", "unknown"])
        assert set(only) == {"q"}
        assert only.get("unknown", QueueCounts()) == QueueCounts()

    async def test_queue_names_are_sorted_and_include_configured_queues(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        await storage.insert_jobs([make_job("b"), make_job("a"), make_job("b", 1)], T0)
        await storage.put_queue_config(QueueConfig(name="c", paused=True))
        assert await storage.queue_names() == ["a", "b", "c"]

    async def test_queue_config_crud(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        config = QueueConfig(name="q", ordering="fifo", paused=True, lease_ms=5_000, created_at=T0)
        await storage.put_queue_config(config)
        assert await storage.get_queue_configs() == {"q": config}
        changed = replace_config(config, paused=False, group_concurrency=2)
        await storage.put_queue_config(changed)
        assert await storage.get_queue_configs() == {"q": changed}
        await storage.delete_queue_config("q")
        await storage.delete_queue_config("q")
        assert await storage.get_queue_configs() == {}

    async def test_rename_queue_moves_jobs_keys_and_config(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        jobs = [
            make_job("old", 1, unique_key="k"),
            make_job("old", 2, state="completed"),
            make_job("old", 3, state="dlq"),
            make_job("keep", 4),
        ]
        await storage.insert_jobs(jobs, T0)
        await storage.put_queue_config(QueueConfig(name="old", paused=True))
        assert await storage.rename_queue("old", "new", at(1)) == 3
        got = await storage.get_jobs([j.id for j in jobs])
        assert [j.queue for j in got] == ["new", "new", "new", "keep"]
        assert set(await storage.get_queue_configs()) == {"new"}
        assert (await storage.get_queue_configs())["new"].paused is True
        assert await storage.queue_names() == ["keep", "new"]
        await storage.insert_jobs([make_job("old", 5, unique_key="k")], at(1))
        with pytest.raises(InsertConflict):
            await storage.insert_jobs([make_job("new", 6, unique_key="k")], at(1))

    async def test_capabilities_are_declared_and_constant(self, storage_factory: Any) -> None:
        storage = await storage_factory()
        before = storage.capabilities
        assert isinstance(before, Capabilities) and before.max_batch >= 1
        await storage.insert_jobs([make_job()], T0)
        assert storage.capabilities == before


def replace_config(config: QueueConfig, **changes: Any) -> QueueConfig:
    import msgspec

    return msgspec.structs.replace(config, **changes)


__all__ = ["StorageConformance", "replace"]
