"""In-process observability of the qrusty API: operation timings and per-queue time series.

Both are bounded and kept per server instance (like qrusty's own stores). The time series is fed by
the engine's committed event batches (one listener call per batch), so messages moved by any
transport or by housekeeping (lock expiry, dead-lettering) are counted too.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rustqueue_core.models import JobEvent

TIMING_WINDOW = 2048
SERIES_INTERVAL_S = 10
SERIES_POINTS = 60
_SERIES_FIELDS = ("published", "consumed", "acked", "requeued", "released", "dropped")
_FIELD_BY_EVENT = {
    "job.pushed": "published",
    "job.claimed": "consumed",
    "job.completed": "acked",
    "job.retrying": "requeued",
    "job.released": "released",
    "job.dlq": "dropped",
}
_INDEX_BY_EVENT = {kind: _SERIES_FIELDS.index(field) for kind, field in _FIELD_BY_EVENT.items()}
_MAX_SERIES_QUEUES = 10_000


class OperationTimings:
    """Latency of each API operation over its last ``TIMING_WINDOW`` calls, plus lifetime counts."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}

    def record(self, operation: str, seconds: float, *, ok: bool = True) -> None:
        samples = self._samples.get(operation)
        if samples is None:
            samples = self._samples[operation] = deque(maxlen=TIMING_WINDOW)
        samples.append(seconds * 1000.0)
        self._counts[operation] = self._counts.get(operation, 0) + 1
        if not ok:
            self._errors[operation] = self._errors.get(operation, 0) + 1

    def record_many(self, operation: str, seconds: float, count: int, errors: int = 0) -> None:
        """``count`` calls served together in ``seconds`` (each took that long), ``errors`` of them failed."""
        if count <= 0:
            return
        samples = self._samples.get(operation)
        if samples is None:
            samples = self._samples[operation] = deque(maxlen=TIMING_WINDOW)
        samples.extend([seconds * 1000.0] * min(count, TIMING_WINDOW))
        self._counts[operation] = self._counts.get(operation, 0) + count
        if errors:
            self._errors[operation] = self._errors.get(operation, 0) + errors

    def snapshot(self) -> dict[str, Any]:
        operations: dict[str, Any] = {}
        for name in sorted(self._samples):
            values = sorted(self._samples[name])
            n = len(values)

            def pct(p: float, values: list[float] = values, n: int = n) -> float:
                return round(values[min(n - 1, int(p * n))], 3)

            operations[name] = {
                "count": self._counts[name],
                "errors": self._errors.get(name, 0),
                "window": n,
                "avg_ms": round(sum(values) / n, 3),
                "p50_ms": pct(0.50),
                "p95_ms": pct(0.95),
                "p99_ms": pct(0.99),
                "max_ms": round(values[-1], 3),
            }
        return {"operations": operations, "window_size": TIMING_WINDOW}


class _Series:
    __slots__ = ("buckets", "starts")

    def __init__(self) -> None:
        self.starts = [-1] * SERIES_POINTS
        self.buckets = [[0] * len(_SERIES_FIELDS) for _ in range(SERIES_POINTS)]

    def slot(self, bucket_start: int) -> list[int]:
        index = (bucket_start // SERIES_INTERVAL_S) % SERIES_POINTS
        if self.starts[index] != bucket_start:
            self.starts[index] = bucket_start
            self.buckets[index] = [0] * len(_SERIES_FIELDS)
        return self.buckets[index]


class QueueSeries:
    """Per-queue counts of published, consumed, acked, requeued, released and dropped messages in
    ``SERIES_INTERVAL_S``-second buckets over the last ``SERIES_POINTS`` buckets (10 minutes)."""

    def __init__(self) -> None:
        self._series: dict[str, _Series] = {}

    def on_events(self, events: Sequence[JobEvent]) -> None:
        """Engine listener: called with each committed batch, on the loop; must stay cheap."""
        counts: dict[tuple[str, int], int] = {}
        for event in events:
            index = _INDEX_BY_EVENT.get(event.kind)
            if index is not None:
                key = (event.queue, index)
                counts[key] = counts.get(key, 0) + 1
        if not counts:
            return
        now = int(time.time())
        bucket_start = now - now % SERIES_INTERVAL_S
        for (queue, index), n in counts.items():
            series = self._series.get(queue)
            if series is None:
                if len(self._series) >= _MAX_SERIES_QUEUES:
                    continue
                series = self._series[queue] = _Series()
            series.slot(bucket_start)[index] += n

    def rename(self, old: str, new: str) -> None:
        series = self._series.pop(old, None)
        if series is not None:
            self._series[new] = series

    def drop(self, queue: str) -> None:
        self._series.pop(queue, None)

    def points(self, queue: str) -> list[dict[str, Any]]:
        now = int(time.time())
        newest = now - now % SERIES_INTERVAL_S
        series = self._series.get(queue)
        points: list[dict[str, Any]] = []
        for age in range(SERIES_POINTS - 1, -1, -1):
            start = newest - age * SERIES_INTERVAL_S
            values: list[int] = [0] * len(_SERIES_FIELDS)
            if series is not None:
                index = (start // SERIES_INTERVAL_S) % SERIES_POINTS
                if series.starts[index] == start:
                    values = series.buckets[index]
            point: dict[str, Any] = {"timestamp": datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z")}
            point.update(zip(_SERIES_FIELDS, values, strict=True))
            points.append(point)
        return points
