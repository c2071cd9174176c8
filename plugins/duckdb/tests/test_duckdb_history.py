"""Finished jobs reach the DuckDB archive in batches; the history queries answer from it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from rustqueue_duckdb.archive import HistoryConfig, connect
from rustqueue_duckdb.history import History
from rustqueue_duckdb.plugin import HistoryPlugin

from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.clock import ManualClock
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost
from rustqueue_core.settings import EngineSettings


async def _engine(tmp_path: Path, clock: ManualClock | None = None) -> tuple[RustQueue, HistoryPlugin]:
    plugin = HistoryPlugin(HistoryConfig(path=str(tmp_path / "history.duckdb"), flush_interval_ms=50))
    rq = RustQueue(
        MemoryStorage(),
        host=PluginHost.embedded([plugin]),
        clock=clock,
        settings=EngineSettings(housekeeping=False),
    )
    await rq.start()
    return rq, plugin


async def _lifespan(rq: RustQueue, plugin: HistoryPlugin):  # type: ignore[no-untyped-def]
    archiver = plugin.rustqueue_lifespan(rq)
    await archiver.__aenter__()
    return archiver


async def test_completed_failed_and_dead_jobs_are_archived(tmp_path: Path) -> None:
    clock = ManualClock()
    rq, plugin = await _engine(tmp_path, clock)
    archiver = await _lifespan(rq, plugin)
    try:
        ok_id = await rq.push("emails", "send", {"n": 1})
        (job,) = await rq.claim("emails", 1)
        clock.advance(2)
        await rq.ack(job.id, {"sent": True})

        bad_id = await rq.push("emails", "bounce", {}, max_attempts=2, backoff="fixed", backoff_delay_ms=0)
        for _ in range(2):
            (job,) = await rq.claim("emails", 1)
            clock.advance(0.5)
            await rq.fail(job.id, "SMTPError: mailbox full")

        cancelled = await rq.push("reports", "build", {})
        await rq.cancel(cancelled)
        await archiver.flush()
    finally:
        await archiver.__aexit__(None, None, None)
        await rq.close()

    con = connect(tmp_path / "history.duckdb", read_only=True)
    rows = con.execute(
        "SELECT job_id, outcome, attempt, run_ms, last_error FROM archived_jobs ORDER BY finished_at, outcome"
    ).fetchall()
    con.close()
    outcomes = [(r[0], r[1]) for r in rows]
    assert (ok_id, "completed") in outcomes
    assert (bad_id, "failed_attempt") in outcomes and (bad_id, "dlq") in outcomes
    assert (cancelled, "cancelled") in outcomes
    completed = next(r for r in rows if r[1] == "completed")
    assert completed[3] == pytest.approx(2000.0)
    dead = next(r for r in rows if r[1] == "dlq")
    assert dead[2] == 2 and dead[4] == "SMTPError: mailbox full"


async def test_queries_answer_throughput_latency_failures_errors_and_slowest(tmp_path: Path) -> None:
    rq, plugin = await _engine(tmp_path)
    archiver = await _lifespan(rq, plugin)
    try:
        await rq.push_batch("fast", [{"name": "thumb", "data": i} for i in range(20)])
        jobs = await rq.claim("fast", 20)
        await rq.ack_batch([j.id for j in jobs])
        await rq.push_batch("flaky", [{"name": "sync", "data": i, "options": {"max_attempts": 1}} for i in range(4)])
        flaky = await rq.claim("flaky", 4)
        await rq.ack(flaky[0].id)
        for job in flaky[1:]:
            await rq.fail(job.id, "Timeout: upstream")
        await archiver.flush()
    finally:
        await archiver.__aexit__(None, None, None)
        await rq.close()

    history = History(tmp_path / "history.duckdb")
    assert history.count() == 24
    per_queue = {}
    for row in history.throughput(since=timedelta(hours=1)):
        per_queue.setdefault(row["queue"], 0)
        per_queue[row["queue"]] += row["completed"]
    assert per_queue == {"fast": 20, "flaky": 1}
    rates = {row["queue"]: row for row in history.failure_rates()}
    assert rates["flaky"]["failure_rate"] == pytest.approx(0.75)
    assert rates["fast"]["failure_rate"] == 0
    errors = history.top_errors()
    assert errors[0]["error"] == "Timeout: upstream" and errors[0]["occurrences"] == 3
    latency = {row["queue"]: row for row in history.latency()}
    assert latency["fast"]["jobs"] == 20 and latency["fast"]["run_p50"] >= 0
    slowest = history.slowest_names(limit=5)
    assert {row["name"] for row in slowest} == {"thumb", "sync"}


async def test_buffer_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    rq, plugin = await _engine(tmp_path)
    plugin.config = HistoryConfig(path=str(tmp_path / "h.duckdb"), max_buffer=3, flush_interval_ms=60_000)
    archiver = await _lifespan(rq, plugin)
    try:
        ids = await rq.push_batch("q", [{"name": "n", "data": i} for i in range(5)])
        jobs = await rq.claim("q", 5)
        await rq.ack_batch([j.id for j in jobs])
        assert archiver.dropped == 2
    finally:
        await archiver.__aexit__(None, None, None)  # final flush writes what was kept
        await rq.close()
    assert History(tmp_path / "h.duckdb").count() == 3
    assert len(ids) == 5


def test_history_command_prints_json(tmp_path: Path) -> None:
    from rustqueue_duckdb.archive import append_rows, rows_for

    from rustqueue_core.clock import utcnow
    from rustqueue_core.models import Job, JobEvent

    now = utcnow()
    job = Job(
        id="j1",
        name="n",
        queue="q",
        created_at=now - timedelta(seconds=3),
        updated_at=now,
        started_at=now - timedelta(seconds=1),
        completed_at=now,
        state="completed",
    )
    append_rows(
        tmp_path / "h.duckdb",
        rows_for([(JobEvent(kind="job.completed", job_id="j1", queue="q", timestamp=now), job)]),
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rustqueue_core",
            "history",
            "latency",
            "--db",
            str(tmp_path / "h.duckdb"),
            "--json",
            "--plugins=duckdb",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows[0]["queue"] == "q" and rows[0]["wait_p50"] == pytest.approx(2000.0)


async def test_jobs_removed_on_complete_or_fail_are_still_archived(tmp_path: Path) -> None:
    rq, plugin = await _engine(tmp_path)
    archiver = await _lifespan(rq, plugin)
    try:
        done_id = await rq.push("q", "ephemeral", {}, remove_on_complete=True)
        dead_id = await rq.push("q", "doomed", {}, remove_on_fail=True, max_attempts=1)
        jobs = {j.id: j for j in await rq.claim("q", 2)}
        await rq.ack(done_id)
        await rq.fail(dead_id, "ValueError: bad input")
        assert await rq.get_job(done_id) is None and await rq.get_job(dead_id) is None
        await archiver.flush()
    finally:
        await archiver.__aexit__(None, None, None)
        await rq.close()
    assert set(jobs) == {done_id, dead_id}
    con = connect(tmp_path / "history.duckdb", read_only=True)
    rows = dict(con.execute("SELECT job_id, outcome FROM archived_jobs").fetchall())
    con.close()
    assert rows == {done_id: "completed", dead_id: "dlq"}
