"""Prometheus metrics of one engine, in a registry of its own (no process-global state).

Counters move once per committed event batch; queue gauges, schedule fires, the scheduler tick,
rate-limit rejections, WebSocket clients and webhook deliveries are read when scraped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sys
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rustqueue_core.errors import RustQueueError
from rustqueue_core.models import Job, JobEvent, QueueStats
from rustqueue_metrics.config import MetricsConfig

log = logging.getLogger("rustqueue.metrics")

#: The text exposition format rendered by ``generate_latest``.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JOB_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Engine event kind → counter it advances. ``jobs_failed`` counts every failed attempt: retries and
# dead-letter entries alike, as the original counted every fail call.
_PUSHED = ("job.pushed",)
_COMPLETED = ("job.completed",)
_FAILED = ("job.retrying", "job.dlq")
_PULLED = ("job.claimed",)

_PUSH_PULL_PATH = re.compile(r"^/api/v1/queues/[^/]+/jobs/?$")
_ACK_PATH = re.compile(r"^/api/v1/jobs/[^/]+/ack/?$")


def status_class(status: int | None) -> str:
    if status is not None and 100 <= status < 600:
        return f"{status // 100}xx"
    return "other"


def counter_total(counter: Counter) -> int:
    """Sum of a counter's ``_total`` samples over all its label sets."""
    return int(sum(s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total")))


class EngineMetrics:
    """Every metric of PROTOCOL §3.7 (plus job run durations) for one engine."""

    def __init__(self, engine: Any, config: MetricsConfig | None = None) -> None:
        self.engine = engine
        self.config = config or MetricsConfig()
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_pushed = Counter("rustqueue_jobs_pushed", "Jobs pushed (single and batch)", registry=r)
        self.jobs_completed = Counter("rustqueue_jobs_completed", "Jobs acknowledged", registry=r)
        self.jobs_failed = Counter("rustqueue_jobs_failed", "Failed attempts, retried or dead-lettered", registry=r)
        self.jobs_pulled = Counter("rustqueue_jobs_pulled", "Jobs handed to consumers", registry=r)
        self.push_duration = Histogram("rustqueue_push_duration_seconds", "Push request duration", registry=r)
        self.pull_duration = Histogram("rustqueue_pull_duration_seconds", "Pull request duration", registry=r)
        self.ack_duration = Histogram("rustqueue_ack_duration_seconds", "Ack request duration", registry=r)
        self.http_requests = Counter("rustqueue_http_requests", "HTTP requests", ["method", "status_class"], registry=r)
        self.http_duration = Histogram(
            "rustqueue_http_request_duration_seconds", "HTTP request duration", ["method"], registry=r
        )
        self.job_duration = Histogram(
            "rustqueue_job_duration_seconds",
            "Run time of job handlers in in-process workers",
            ["queue", "outcome"],
            buckets=JOB_DURATION_BUCKETS,
            registry=r,
        )
        self.schedules_fired_total = 0
        self._schedule_runs: dict[str, int] | None = None
        self._stats: list[QueueStats] = []
        self._refreshed_at = -math.inf
        self._refresh_lock = asyncio.Lock()
        r.register(_ScrapeTimeCollector(self))

    # ------------------------------------------------------------------ inputs
    def observe_events(self, events: Sequence[JobEvent]) -> None:
        """Advance the job counters by one committed batch (on the loop; never raises)."""
        kinds = Tally(event.kind for event in events)
        for counter, names in (
            (self.jobs_pushed, _PUSHED),
            (self.jobs_completed, _COMPLETED),
            (self.jobs_failed, _FAILED),
            (self.jobs_pulled, _PULLED),
        ):
            n = sum(kinds[name] for name in names)
            if n:
                counter.inc(n)

    def observe_http(self, method: str, path: str, status: int | None, seconds: float) -> None:
        self.http_requests.labels(method, status_class(status)).inc()
        self.http_duration.labels(method).observe(seconds)
        if _PUSH_PULL_PATH.match(path):
            if method == "POST":
                self.push_duration.observe(seconds)
            elif method == "GET":
                self.pull_duration.observe(seconds)
        elif method == "POST" and _ACK_PATH.match(path):
            self.ack_duration.observe(seconds)

    def job_middleware(self, queue: str) -> Callable[[Job, Callable[[Job], Awaitable[Any]]], Awaitable[Any]]:
        """A worker middleware timing each handler run; composed once per worker start."""
        ok = self.job_duration.labels(queue, "ok")
        error = self.job_duration.labels(queue, "error")

        async def timed(job: Job, call_next: Callable[[Job], Awaitable[Any]]) -> Any:
            started = time.perf_counter()
            try:
                result = await call_next(job)
            except BaseException:
                error.observe(time.perf_counter() - started)
                raise
            ok.observe(time.perf_counter() - started)
            return result

        return timed

    # ------------------------------------------------------------------ scrape time
    async def refresh(self, *, force: bool = False) -> None:
        """Read queue stats and schedule counts from the engine, at most once per cache period."""
        async with self._refresh_lock:
            now = time.monotonic()
            if not force and now - self._refreshed_at < self.config.scrape_cache_ms / 1000:
                return
            try:
                self._stats = list(await self.engine.stats())
                await self.count_schedule_fires()
            except RustQueueError as exc:
                # Starting or closing engine: serve the last reading rather than fail the scrape.
                log.warning("metrics: engine readings unavailable (%s); serving the last ones", exc.code)
                return
            self._refreshed_at = time.monotonic()

    async def count_schedule_fires(self) -> None:
        """Advance ``schedules_fired_total`` by the growth of each schedule's execution count since
        the previous reading (the first reading sets the baseline)."""
        runs = {s.name: s.execution_count for s in await self.engine.list_schedules()}
        if self._schedule_runs is not None:
            for name, count in runs.items():
                before = self._schedule_runs.get(name, 0)
                # A replaced schedule restarts at 0: count what it fired since.
                self.schedules_fired_total += count - before if count >= before else count
        self._schedule_runs = runs

    @property
    def queue_stats(self) -> list[QueueStats]:
        return self._stats

    def tick_seconds(self) -> float:
        value = getattr(self.engine, "last_tick_seconds", None)
        if value is None:
            # Engines without the public property keep the last pass duration here.
            value = getattr(self.engine, "_last_tick_seconds", 0.0)
        return float(value or 0.0)

    def websocket_clients(self) -> int:
        host = getattr(self.engine, "host", None)
        module = sys.modules.get("rustqueue_websocket.plugin")  # loaded only when that plugin is
        instance = module.find_plugin(host) if module is not None and host is not None else None
        broker = getattr(instance, "broker", None)
        return int(getattr(broker, "client_count", 0) or 0)

    def webhook_totals(self) -> tuple[int, int]:
        """(delivered, failed) of the webhooks plugin for this engine; zeros when it is not active."""
        module = sys.modules.get("rustqueue_webhooks.service")  # loaded only when the plugin runs
        service = module.service_for(self.engine) if module is not None else None
        if service is None:
            return 0, 0
        return int(service.delivered_total), int(service.failed_total)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> dict[str, Any]:
        """The JSON form served at ``metrics.json_path``."""
        delivered, failed = self.webhook_totals()
        return {
            "jobs_pushed_total": counter_total(self.jobs_pushed),
            "jobs_completed_total": counter_total(self.jobs_completed),
            "jobs_failed_total": counter_total(self.jobs_failed),
            "jobs_pulled_total": counter_total(self.jobs_pulled),
            "schedules_fired_total": self.schedules_fired_total,
            "scheduler_tick_duration_seconds": self.tick_seconds(),
            "websocket_clients_connected": self.websocket_clients(),
            "webhooks_delivered_total": delivered,
            "webhooks_delivery_failures_total": failed,
            "http_requests_total": counter_total(self.http_requests),
            "queues": {
                s.name: {
                    "waiting": s.counts.waiting,
                    "active": s.counts.active,
                    "delayed": s.counts.delayed,
                    "dlq": s.counts.dlq,
                    "rate_limit_rejected_total": s.rate_limited,
                }
                for s in self._stats
            },
        }


class _ScrapeTimeCollector(Collector):
    """Families computed from the engine's last reading when the registry is collected."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        gauges = {
            "waiting": GaugeMetricFamily("rustqueue_queue_waiting_jobs", "Waiting jobs", labels=["queue"]),
            "active": GaugeMetricFamily("rustqueue_queue_active_jobs", "Active jobs", labels=["queue"]),
            "delayed": GaugeMetricFamily("rustqueue_queue_delayed_jobs", "Delayed jobs", labels=["queue"]),
            "dlq": GaugeMetricFamily("rustqueue_queue_dlq_jobs", "Dead-lettered jobs", labels=["queue"]),
        }
        rejected = CounterMetricFamily(
            "rustqueue_rate_limit_rejected", "Pushes refused by the queue's rate limit", labels=["queue"]
        )
        for stats in m.queue_stats:
            for state, family in gauges.items():
                family.add_metric([stats.name], getattr(stats.counts, state))
            rejected.add_metric([stats.name], stats.rate_limited)
        yield from gauges.values()
        yield rejected
        yield CounterMetricFamily(
            "rustqueue_schedules_fired",
            "Schedule fires observed by this process",
            value=m.schedules_fired_total,
        )
        yield GaugeMetricFamily(
            "rustqueue_scheduler_tick_duration_seconds",
            "Duration of the last housekeeping pass",
            value=m.tick_seconds(),
        )
        yield GaugeMetricFamily(
            "rustqueue_websocket_clients_connected",
            "Connected WebSocket clients",
            value=m.websocket_clients(),
        )
        delivered, failed = m.webhook_totals()
        yield CounterMetricFamily("rustqueue_webhooks_delivered", "Webhook deliveries that succeeded", value=delivered)
        yield CounterMetricFamily(
            "rustqueue_webhooks_delivery_failures",
            "Webhook deliveries that failed every attempt",
            value=failed,
        )
