"""Per-queue token buckets (SEMANTICS §2.15): start full, refill continuously, all-or-nothing takes."""

from __future__ import annotations

import math

from rustqueue_core.errors import RateLimited


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, n: int, now: float, queue: str) -> None:
        """Take ``n`` tokens or none; raises :class:`RateLimited` with the wait until they exist."""
        if n > self.burst:
            raise RateLimited(
                f"Rate limit exceeded: a batch of {n} exceeds the burst of {self.burst} for queue '{queue}'",
                retry_after_ms=0,
                queue=queue,
            )
        self._refill(now)
        # A small tolerance absorbs float error from continuous refill.
        if self.tokens + 1e-9 < n:
            missing = n - self.tokens
            raise RateLimited(retry_after_ms=max(1, math.ceil(missing / self.rate * 1000)), queue=queue)
        self.tokens -= n

    def refund(self, n: int) -> None:
        self.tokens = min(float(self.burst), self.tokens + n)


class RateLimiter:
    """Buckets of one engine instance, rebuilt when a queue's limits change."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def configure(self, queue: str, rate: float | None, burst: int | None, now: float) -> None:
        if rate is None:
            self._buckets.pop(queue, None)
            return
        size = burst if burst is not None else max(1, math.ceil(rate))
        current = self._buckets.get(queue)
        if current is None or current.rate != rate or current.burst != size:
            self._buckets[queue] = TokenBucket(rate, size, now)

    def bucket(self, queue: str) -> TokenBucket | None:
        return self._buckets.get(queue)

    def rename(self, old: str, new: str) -> None:
        bucket = self._buckets.pop(old, None)
        if bucket is not None:
            self._buckets[new] = bucket

    def drop(self, queue: str) -> None:
        self._buckets.pop(queue, None)
