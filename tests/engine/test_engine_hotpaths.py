"""Invariants of the fast paths: pooled id randomness, cached push plans, the SQLite row cache, index use."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rustqueue_core.builtin import sqlite_ops, sqlite_query
from rustqueue_core.builtin.sqlite import SQLiteStorage
from rustqueue_core.ids import new_ids
from rustqueue_core.storage import JobFilter


def test_ids_stay_unique_and_ordered_across_pool_refills() -> None:
    ids: list[str] = []
    for size in (1, 700, 1, 1500, 3, 2000):  # several calls cross the random pool's boundary
        ids.extend(text for text, _ in new_ids(size))
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_replay_parent_randomness() -> None:
    new_ids(1)  # the parent's pool now holds unused random bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its ids and leave without running the parent's cleanups
        try:
            os.write(write_end, "\n".join(text for text, _ in new_ids(200)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent = {text for text, _ in new_ids(200)}
    chunks: list[bytes] = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    child = set(b"".join(chunks).decode().split("\n"))
    assert len(child) == 200
    assert not parent & child
    # the random tails (last 8 hex digits) differ too: the child drew fresh bytes
    assert not {i[-8:] for i in parent} & {i[-8:] for i in child}


async def test_push_plan_follows_queue_config_changes(rq: Any) -> None:
    first = await rq.push("q", "job")
    await rq.configure_queue("q", job_defaults={"max_attempts": 5})
    second = await rq.push("q", "job")
    await rq.configure_queue("q", job_defaults={"max_attempts": 8})
    third = await rq.push("q", "job")
    jobs = {j.id: j for j in await rq.storage.get_jobs([first, second, third])}
    assert jobs[first].max_attempts == 3
    assert jobs[second].max_attempts == 5
    assert jobs[third].max_attempts == 8


async def test_sqlite_claimed_job_is_the_callers_own_copy(tmp_path: Path) -> None:
    """Mutating what claim returned must not leak into the job the ack returns (the row cache keeps
    its own object)."""
    storage = SQLiteStorage(tmp_path / "jobs.db")
    await storage.open()
    try:
        from rustqueue_core.engine import RustQueue

        rq = RustQueue(storage)
        await rq.start()
        try:
            job_id = await rq.push("q", "job", {"n": 1})
            (claimed,) = await rq.claim("q", 1)
            claimed.data = {"n": "tampered"}
            claimed.lease_token = "forged"
            done = await rq.ack(job_id)
            assert done.data == {"n": 1}
            assert done.state == "completed" and done.lease_token is None
            (stored,) = await storage.get_jobs([job_id])
            assert stored is not None and stored.data == {"n": 1} and stored.state == "completed"
        finally:
            await rq.close()
    finally:
        await storage.close()


def test_sqlite_expiry_scan_uses_its_partial_index() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    sqlite_ops.migrate(conn)
    captured: list[str] = []
    conn.set_trace_callback(captured.append)
    f = JobFilter(states=["waiting", "delayed", "blocked"], expires_at_lte=datetime.now(UTC))
    sqlite_query.find_jobs(conn, f, 10, None)
    select = next(s for s in captured if s.startswith("SELECT"))
    plan = " ".join(str(row) for row in conn.execute("EXPLAIN QUERY PLAN " + select))
    assert "jobs_expires" in plan
    conn.close()


@pytest.mark.parametrize(
    ("config", "expected_prefix_len"),
    [
        ({}, 10),  # max_first numeric: 9 priority bytes + the lifo flag
        ({"ordering": "fifo"}, 1),
        ({"ordering": "lifo"}, 1),
        ({"ordering": "min_first"}, 10),
        ({"allow_duplicates": False}, 10),
        ({"job_defaults": {"ttl_ms": 60_000, "max_attempts": 7, "timeout_ms": 5_000}}, 10),
    ],
)
async def test_option_free_pushes_build_the_same_job_as_the_general_path(
    rq: Any, config: dict[str, Any], expected_prefix_len: int
) -> None:
    """A push without options takes a faster, template-based build; it must build exactly what the
    general path builds when the same values are given explicitly."""
    await rq.create_queue("tpl", **config)
    fast_id = await rq.push("tpl", "job", {"n": 1})
    # metadata sends the push down the general path (the only difference it makes is the metadata)
    general_id = await rq.push("tpl", "job", {"n": 2}, priority=0, lifo=False, metadata={"path": "general"})
    fast, general = await rq.get_jobs([fast_id, general_id])
    assert fast is not None and general is not None
    differ = {"id", "data", "sort_key", "created_at", "updated_at", "expires_at", "unique_key", "metadata"}
    for field in fast.__struct_fields__:
        if field not in differ:
            assert getattr(fast, field) == getattr(general, field), field
    assert fast.sort_key[:expected_prefix_len] == general.sort_key[:expected_prefix_len]
    assert (fast.expires_at is None) == (general.expires_at is None)
    if config.get("allow_duplicates") is False:
        assert fast.unique_key is not None and fast.unique_key != general.unique_key


SCALAR_OPTIONS: list[dict[str, Any]] = [
    {"priority": 7},
    {"priority": -3, "max_attempts": 9},
    {"max_attempts": 1, "backoff": "fixed", "backoff_delay_ms": 0},
    {"backoff": "linear", "backoff_delay_ms": 250, "timeout_ms": 1_000},
    {"remove_on_complete": True, "remove_on_fail": True, "priority": 2},
    {"delay_ms": 0, "lifo": False, "tags": []},
]


@pytest.mark.parametrize("ordering", ["max_first", "min_first", "fifo", "lifo"])
@pytest.mark.parametrize("options", SCALAR_OPTIONS)
async def test_scalar_option_pushes_build_the_same_job_as_the_general_path(
    rq: Any, ordering: str, options: dict[str, Any]
) -> None:
    """Options that only override per-job scalars take the template path too; it must build exactly
    what the general path builds for the same options, sort key order included."""
    await rq.create_queue("scalars", ordering=ordering, job_defaults={"ttl_ms": 60_000})
    fast_id = await rq.push("scalars", "job", {"n": 1}, **options)
    general_id = await rq.push("scalars", "job", {"n": 1}, metadata={"path": "general"}, **options)
    fast, general = await rq.get_jobs([fast_id, general_id])
    assert fast is not None and general is not None
    differ = {"id", "sort_key", "created_at", "updated_at", "expires_at", "metadata"}
    for field in fast.__struct_fields__:
        if field not in differ:
            assert getattr(fast, field) == getattr(general, field), field
    assert fast.metadata is None
    # same key up to the creation time: the same priority part and lifo flag
    assert fast.sort_key[:-24] == general.sort_key[:-24]
    assert fast.expires_at is not None and general.expires_at is not None
