"""Names, types, labels and values of PROTOCOL §3.7, read back with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from rustqueue_metrics.plugin import metrics_for

from rustqueue_core.errors import RateLimited

COUNTERS = (
    "rustqueue_jobs_pushed",
    "rustqueue_jobs_completed",
    "rustqueue_jobs_failed",
    "rustqueue_jobs_pulled",
    "rustqueue_schedules_fired",
    "rustqueue_http_requests",
    "rustqueue_webhooks_delivered",
    "rustqueue_webhooks_delivery_failures",
    "rustqueue_rate_limit_rejected",
)
GAUGES = (
    "rustqueue_queue_waiting_jobs",
    "rustqueue_queue_active_jobs",
    "rustqueue_queue_delayed_jobs",
    "rustqueue_queue_dlq_jobs",
    "rustqueue_websocket_clients_connected",
    "rustqueue_scheduler_tick_duration_seconds",
)
HISTOGRAMS = (
    "rustqueue_push_duration_seconds",
    "rustqueue_pull_duration_seconds",
    "rustqueue_ack_duration_seconds",
    "rustqueue_http_request_duration_seconds",
    "rustqueue_job_duration_seconds",
)


async def test_every_family_has_its_name_and_type(metrics_engine: Any, parse: Any) -> None:
    _, metrics = await metrics_engine()
    await metrics.refresh()
    scrape = parse(metrics.render())
    for name in COUNTERS:
        assert scrape.families[name].type == "counter", name
    for name in GAUGES:
        assert scrape.families[name].type == "gauge", name
    for name in HISTOGRAMS:
        assert scrape.families[name].type == "histogram", name
    assert scrape.value("rustqueue_jobs_pushed_total") == 0
    assert scrape.value("rustqueue_websocket_clients_connected") == 0


async def test_job_counters_and_queue_gauges_follow_the_engine(metrics_engine: Any, parse: Any) -> None:
    engine, metrics = await metrics_engine()
    await engine.push_batch("emails", [{"name": "a"}, {"name": "b"}, {"name": "c", "max_attempts": 1}])
    await engine.push("emails", "later", delay_ms=60_000)
    await engine.push("reports", "r")
    first, second, third = await engine.claim("emails", 3)
    await engine.ack(first.id)
    retry = await engine.fail(second.id, "flaky")  # attempt 1 of 3: retried
    assert retry.will_retry
    dead = await engine.fail(third.id, "fatal")  # max_attempts=1: dead-lettered
    assert not dead.will_retry
    await metrics.refresh(force=True)
    scrape = parse(metrics.render())
    assert scrape.value("rustqueue_jobs_pushed_total") == 5
    assert scrape.value("rustqueue_jobs_pulled_total") == 3
    assert scrape.value("rustqueue_jobs_completed_total") == 1
    assert scrape.value("rustqueue_jobs_failed_total") == 2  # the retry and the DLQ entry
    assert scrape.value("rustqueue_queue_waiting_jobs", queue="reports") == 1
    assert scrape.value("rustqueue_queue_delayed_jobs", queue="emails") == 2  # "later" and the retry
    assert scrape.value("rustqueue_queue_dlq_jobs", queue="emails") == 1
    assert scrape.value("rustqueue_queue_active_jobs", queue="emails") == 0
    assert scrape.value("rustqueue_queue_waiting_jobs", queue="emails") == 0


async def test_gauges_are_cached_for_the_scrape_period(metrics_engine: Any, parse: Any) -> None:
    engine, metrics = await metrics_engine(scrape_cache_ms=60_000)
    await engine.push("q", "a")
    await metrics.refresh()
    await engine.push("q", "b")
    await metrics.refresh()
    assert parse(metrics.render()).value("rustqueue_queue_waiting_jobs", queue="q") == 1
    await metrics.refresh(force=True)
    assert parse(metrics.render()).value("rustqueue_queue_waiting_jobs", queue="q") == 2
    # Event counters are never cached.
    assert parse(metrics.render()).value("rustqueue_jobs_pushed_total") == 2


async def test_schedule_fires_and_rate_limit_rejections(metrics_engine: Any, parse: Any) -> None:
    engine, metrics = await metrics_engine(scrape_cache_ms=0)
    await engine.create_schedule(name="nightly", queue="reports", job_name="build", every_ms=1_000)
    await engine.tick()
    engine.clock.advance(1.5)
    await engine.tick()
    await engine.configure_queue("limited", rate_limit_per_second=0.001, rate_limit_burst=1)
    await engine.push("limited", "ok")
    with pytest.raises(RateLimited):
        await engine.push("limited", "too-soon")
    await metrics.refresh()
    scrape = parse(metrics.render())
    assert scrape.value("rustqueue_schedules_fired_total") == 2
    assert scrape.value("rustqueue_rate_limit_rejected_total", queue="limited") == 1
    assert scrape.value("rustqueue_scheduler_tick_duration_seconds") > 0


async def test_worker_middleware_times_job_runs(metrics_engine: Any, parse: Any) -> None:
    engine, metrics = await metrics_engine()
    await engine.push_batch("work", [{"name": "ok"}, {"name": "boom", "max_attempts": 1}])
    done = asyncio.Event()
    seen: list[str] = []

    async def handler(job: Any) -> None:
        seen.append(job.name)
        if len(seen) == 2:
            done.set()
        if job.name == "boom":
            raise RuntimeError("boom")

    worker = asyncio.create_task(engine.run_worker("work", handler, shutdown=done, poll_interval=0.01))
    await asyncio.wait_for(worker, 10)
    scrape = parse(metrics.render())
    assert scrape.value("rustqueue_job_duration_seconds_count", queue="work", outcome="ok") == 1
    assert scrape.value("rustqueue_job_duration_seconds_count", queue="work", outcome="error") == 1
    assert scrape.value("rustqueue_job_duration_seconds_bucket", queue="work", outcome="ok", le="+Inf") == 1


async def test_two_engines_have_independent_registries(metrics_engine: Any, parse: Any) -> None:
    (one, m1), (two, m2) = await metrics_engine(), await metrics_engine()
    assert m1.registry is not m2.registry
    await one.push("q", "a")
    await one.push("q", "b")
    await two.push("q", "c")
    assert parse(m1.render()).value("rustqueue_jobs_pushed_total") == 2
    assert parse(m2.render()).value("rustqueue_jobs_pushed_total") == 1
    assert metrics_for(one) is m1 and metrics_for(two) is m2


async def test_lifespan_exit_detaches_from_the_engine(metrics_engine: Any, parse: Any) -> None:
    from rustqueue_metrics.config import MetricsConfig
    from rustqueue_metrics.plugin import MetricsPlugin

    engine, first = await metrics_engine()
    plugin = MetricsPlugin(MetricsConfig())
    async with plugin.run(engine) as second:
        assert metrics_for(engine) is second
        await engine.push("q", "during")
    assert metrics_for(engine) is first
    await engine.push("q", "after")  # the detached registry no longer moves
    assert parse(second.render()).value("rustqueue_jobs_pushed_total") == 1
    assert parse(first.render()).value("rustqueue_jobs_pushed_total") == 2


def test_importing_the_plugin_loads_neither_prometheus_client_nor_litestar() -> None:
    code = (
        "import sys, rustqueue_metrics, rustqueue_metrics.plugin\n"
        "print(','.join(m for m in ('prometheus_client', 'litestar') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


async def test_scrape_after_close_serves_the_last_readings(metrics_engine: Any, parse: Any) -> None:
    engine, metrics = await metrics_engine(scrape_cache_ms=0)
    await engine.push("q", "a")
    await metrics.refresh()
    await engine.close()
    await metrics.refresh()  # the closed engine refuses reads; the scrape must not fail
    assert parse(metrics.render()).value("rustqueue_queue_waiting_jobs", queue="q") == 1
