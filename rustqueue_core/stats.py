"""Per-instance queue counters and 60-s sliding rates (SEMANTICS §4.3). Kept in process only."""

from __future__ import annotations

WINDOW_SECONDS = 60


class SlidingRate:
    """Events in a 60-s window of 1-s buckets."""

    __slots__ = ("buckets", "seconds")

    def __init__(self) -> None:
        self.buckets = [0] * WINDOW_SECONDS
        self.seconds = [-1] * WINDOW_SECONDS

    def add(self, n: int, now: float) -> None:
        second = int(now)
        slot = second % WINDOW_SECONDS
        if self.seconds[slot] != second:
            self.seconds[slot] = second
            self.buckets[slot] = 0
        self.buckets[slot] += n

    def total(self, now: float) -> int:
        second = int(now)
        return sum(
            count
            for count, at in zip(self.buckets, self.seconds, strict=True)
            if at >= 0 and second - at < WINDOW_SECONDS
        )


class QueueCounters:
    __slots__ = (
        "ack_rate",
        "acked",
        "claimed",
        "dead",
        "failed",
        "nacked",
        "publish_rate",
        "published",
        "rate_limited",
        "skipped_fires",
    )

    def __init__(self) -> None:
        self.published = 0
        self.claimed = 0
        self.acked = 0
        self.nacked = 0
        self.failed = 0
        self.dead = 0
        self.rate_limited = 0
        self.skipped_fires = 0
        self.publish_rate = SlidingRate()
        self.ack_rate = SlidingRate()


class Counters:
    def __init__(self, started: float) -> None:
        self.started = started
        self.queues: dict[str, QueueCounters] = {}

    def of(self, queue: str) -> QueueCounters:
        counters = self.queues.get(queue)
        if counters is None:
            counters = self.queues[queue] = QueueCounters()
        return counters

    def rates(self, queue: str, now: float) -> tuple[float, float]:
        counters = self.queues.get(queue)
        if counters is None:
            return 0.0, 0.0
        span = min(float(WINDOW_SECONDS), max(now - self.started, 1.0))
        return counters.publish_rate.total(now) / span, counters.ack_rate.total(now) / span

    def rename(self, old: str, new: str) -> None:
        counters = self.queues.pop(old, None)
        if counters is not None:
            self.queues[new] = counters
