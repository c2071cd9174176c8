"""The engine's only source of time. Storage receives ``now`` from the engine and never reads a clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """Real time: aware UTC ``now()`` with µs, ``monotonic()`` seconds, ``sleep(seconds)``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock(Clock):
    """A virtual clock for tests: time moves only through ``advance``. ``sleep`` yields to the loop
    and returns at once, so code that sleeps never waits for real time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float | timedelta) -> datetime:
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        self._now += delta
        self._mono += delta.total_seconds()
        return self._now

    def set(self, when: datetime) -> None:
        self._mono += max(0.0, (when - self._now).total_seconds())
        self._now = when

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
