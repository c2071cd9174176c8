"""qrusty's memory levels on the engine's memory monitor.

qrusty has three thresholds (fractions of ``QRUSTY_MEMORY_LIMIT_MB``): warning at 0.80, critical at
0.90 and an exit threshold of 0.70 below which pressure ends. The engine's monitor names the levels
``pressure`` and ``critical`` and refuses pushes with ``OVERLOADED`` at ``critical``; this subclass
gives it qrusty's entry points and exit hysteresis, and a sampler runs it at qrusty's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from rustqueue_core.memory_pressure import CRITICAL, NORMAL, PRESSURE, MemoryMonitor
from rustqueue_qrusty.settings import MemorySettings

logger = logging.getLogger("rustqueue.qrusty.memory")

#: qrusty's names of the engine's levels.
QRUSTY_LEVEL = {NORMAL: "normal", PRESSURE: "warning", CRITICAL: "critical"}
_RANK = {NORMAL: 0, PRESSURE: 1, CRITICAL: 2}


class QrustyMemoryMonitor(MemoryMonitor):
    """The engine's monitor with qrusty's thresholds: warning at ``pressure``, critical at ``critical``;
    critical is left as soon as usage falls below it, pressure only below ``exit``."""

    def __init__(self, settings: MemorySettings) -> None:
        super().__init__(
            None,
            settings.pressure,
            settings.critical,
            exit=settings.exit,
            critical_exit=settings.critical,
            limit_bytes=settings.limit_bytes,
        )


def install_monitor(engine: Any, settings: MemorySettings) -> MemoryMonitor | None:
    """Give the engine qrusty's levels, unless the engine has a limit of its own and none was set for
    qrusty explicitly. Returns the monitor in effect (None when no budget is known)."""
    current: MemoryMonitor | None = getattr(engine, "memory_monitor", None)
    engine_limit = getattr(getattr(engine, "settings", None), "memory_limit_mb", None)
    if engine_limit is not None and not settings.explicit:
        return current if isinstance(current, MemoryMonitor) else None
    if settings.limit_bytes is None:
        return None
    monitor = QrustyMemoryMonitor(settings)
    engine.set_memory_monitor(monitor)
    return monitor


async def _shed(engine: Any) -> None:
    shed = getattr(engine.storage, "shed", None)
    if shed is not None:
        try:
            await shed()
        except Exception:
            logger.exception("storage shed failed")
    gc.collect()


@contextlib.asynccontextmanager
async def memory_sampler(engine: Any, monitor: MemoryMonitor | None, interval_s: float) -> AsyncIterator[None]:
    """Sample resident memory every ``interval_s`` while entered; shed caches on each rise in level."""
    if monitor is None or not monitor.enabled:
        yield
        return

    async def run() -> None:
        while True:
            previous, level = monitor.sample()
            if _RANK.get(level, 0) > _RANK.get(previous, 0):
                await _shed(engine)
            if not monitor.enabled:
                return
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(run(), name="qrusty-memory-sampler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
