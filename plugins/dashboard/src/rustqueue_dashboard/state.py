"""Per-engine dashboard state: a rolling time series of queue stats and a bounded server log buffer.

Both are fed without touching the engine's hot path. The series samples ``engine.stats()`` (counts
plus in-process counters) every ``sample_interval_s`` from a background task that the plugin's
lifespan runs; without a lifespan (an app built around an embedded engine) it is sampled whenever the
dashboard reads it and the last sample is older than the interval. The log buffer is a
``logging.Handler`` on the root logger holding the last ``log_lines`` records.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from rustqueue_dashboard.settings import DashboardConfig, config_of_engine

logger = logging.getLogger("rustqueue.dashboard")

#: Queues tracked by the series at most (the oldest-seen beyond that are not sampled).
MAX_SERIES_QUEUES = 1_000


class SeriesPoint:
    __slots__ = ("acked", "dlq", "failed", "locked", "pending", "published", "t")

    def __init__(
        self, t: float, published: float, acked: float, failed: float, pending: int, locked: int, dlq: int
    ) -> None:
        self.t = t
        self.published = published
        self.acked = acked
        self.failed = failed
        self.pending = pending
        self.locked = locked
        self.dlq = dlq

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": datetime.fromtimestamp(self.t, UTC).isoformat().replace("+00:00", "Z"),
            "publish_rate": round(self.published, 3),
            "ack_rate": round(self.acked, 3),
            "fail_rate": round(self.failed, 3),
            "pending": self.pending,
            "locked": self.locked,
            "dlq": self.dlq,
        }


class StatsSampler:
    """Per-queue rates (from counter deltas between samples) and depths over the last
    ``series_points`` samples."""

    def __init__(self, engine: Any, interval_s: float, points: int) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.points = points
        self.series: dict[str, deque[SeriesPoint]] = {}
        self._last_counters: dict[str, tuple[int, int, int]] = {}
        self._last_sample = 0.0
        self._lock = asyncio.Lock()

    async def sample(self) -> None:
        """Take one sample of every queue (one ``stats()`` call: one count query)."""
        async with self._lock:
            now = time.time()
            elapsed = now - self._last_sample if self._last_sample else 0.0
            stats = await self.engine.stats()
            seen: set[str] = set()
            for row in stats:
                seen.add(row.name)
                counters = (row.published, row.acked, row.failed)
                previous = self._last_counters.get(row.name)
                self._last_counters[row.name] = counters
                series = self.series.get(row.name)
                if series is None:
                    if len(self.series) >= MAX_SERIES_QUEUES:
                        continue
                    series = self.series[row.name] = deque(maxlen=self.points)
                rates = [0.0, 0.0, 0.0]
                if previous is not None and elapsed > 0:
                    # A counter that went down was reset (rename, restart): no rate for that step.
                    rates = [max(0, cur - prev) / elapsed for cur, prev in zip(counters, previous, strict=True)]
                series.append(SeriesPoint(now, rates[0], rates[1], rates[2], row.pending, row.locked, row.counts.dlq))
            for gone in set(self.series) - seen:
                del self.series[gone]
                self._last_counters.pop(gone, None)
            self._last_sample = now

    async def sample_if_stale(self) -> None:
        if time.time() - self._last_sample >= self.interval_s:
            await self.sample()

    def points_of(self, queue: str) -> list[dict[str, Any]]:
        return [point.to_dict() for point in self.series.get(queue, ())]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and getattr(self.engine, "state", "ready") in ("starting", "ready"):
            if getattr(self.engine, "state", "ready") == "ready":
                try:
                    await self.sample()
                except Exception:
                    logger.debug("dashboard stats sample failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)


class LogBuffer(logging.Handler):
    """The last ``capacity`` log records as JSON-ready dicts, numbered so that a reader can ask for
    the lines after the last one it saw. Records may come from any thread."""

    def __init__(self, capacity: int, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            entry: dict[str, Any] = {
                "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
                "level": record.levelname,
                "logger": record.name,
                "message": message,
            }
        except Exception:
            self.handleError(record)
            return
        with self._guard:
            entry["seq"] = next(self._seq)
            self.lines.append(entry)

    def since(self, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Lines numbered above ``after`` (at most ``limit``, the newest ones) and the last number."""
        with self._guard:
            lines = [line for line in self.lines if line["seq"] > after]
            last = self.lines[-1]["seq"] if self.lines else 0
        return lines[-limit:], last


class DashboardState:
    """What the dashboard keeps for one engine."""

    def __init__(self, engine: Any, config: DashboardConfig) -> None:
        self.config = config
        self.sampler = StatsSampler(engine, config.sample_interval_s, config.series_points)
        self.logs = LogBuffer(config.log_lines, config.log_level_number)
        self.sampling_in_background = False
        self._attached = 0

    def attach_logs(self) -> None:
        """Start capturing log records (reference-counted: the app and the lifespan both attach)."""
        if self._attached == 0:
            logging.getLogger().addHandler(self.logs)
        self._attached += 1

    def detach_logs(self) -> None:
        if self._attached == 0:
            return
        self._attached -= 1
        if self._attached == 0:
            logging.getLogger().removeHandler(self.logs)


_STATES: weakref.WeakKeyDictionary[Any, DashboardState] = weakref.WeakKeyDictionary()


def state_for(engine: Any, config: DashboardConfig | None = None) -> DashboardState:
    """The dashboard state of ``engine``, created on first use."""
    state = _STATES.get(engine)
    if state is None:
        state = _STATES[engine] = DashboardState(engine, config or config_of_engine(engine))
    return state


@contextlib.asynccontextmanager
async def dashboard_lifespan(engine: Any, config: DashboardConfig) -> AsyncIterator[DashboardState]:
    """Sample stats in the background and capture log lines while the engine serves."""
    state = state_for(engine, config)
    state.attach_logs()
    stop = asyncio.Event()
    task = asyncio.create_task(state.sampler.run(stop), name="rustqueue-dashboard-sampler")
    state.sampling_in_background = True
    try:
        yield state
    finally:
        state.sampling_in_background = False
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        state.detach_logs()
