"""Memory pressure levels (SEMANTICS §4.5): normal → pressure → critical with 5 % hysteresis."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("rustqueue.memory")

NORMAL, PRESSURE, CRITICAL = "normal", "pressure", "critical"
_HYSTERESIS = 0.05


def resident_bytes() -> int | None:
    """Resident set size of this process, or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is a peak, in KiB on Linux and bytes on macOS: the best stand-in available.
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError, ValueError):
        return None


class MemoryMonitor:
    """Levels of resident memory against a limit (fractions of ``limit``):

    * enter ``pressure`` at ``threshold``, ``critical`` at ``critical``;
    * leave ``critical`` below ``critical_exit`` (default: 5 % under ``critical``), for ``pressure`` or
      ``normal`` by the same rules;
    * leave ``pressure`` below ``exit`` (default: 5 % under ``threshold``).

    qrusty's three settings (warning 0.80, critical 0.90, exit 0.70) are this with ``exit=0.70`` and
    ``critical_exit=0.90``.
    """

    def __init__(
        self,
        limit_mb: float | None,
        threshold: float = 0.80,
        critical: float = 1.0,
        exit: float | None = None,
        critical_exit: float | None = None,
        *,
        limit_bytes: int | None = None,
    ) -> None:
        self.limit = limit_bytes or (int(limit_mb * 1024 * 1024) if limit_mb else None)
        self.threshold = threshold
        self.critical = critical
        self.exit = threshold - _HYSTERESIS if exit is None else exit
        self.critical_exit = critical - _HYSTERESIS if critical_exit is None else critical_exit
        if not 0 < self.exit <= self.threshold <= self.critical or self.critical_exit > self.critical:
            raise ValueError(
                "memory thresholds must satisfy 0 < exit <= pressure <= critical and critical_exit <= critical"
            )
        self.level = NORMAL
        self.last_bytes: int | None = None
        self.enabled = self.limit is not None

    def update(self, used: int | None) -> tuple[str, str]:
        """Apply one sample; returns (previous level, new level)."""
        previous = self.level
        if not self.enabled or self.limit is None:
            return previous, previous
        if used is None:
            log.warning("resident memory cannot be read on this platform; memory limit disabled")
            self.enabled = False
            self.level = NORMAL
            return previous, NORMAL
        self.last_bytes = used
        fraction = used / self.limit
        if fraction >= self.critical or (previous == CRITICAL and fraction >= self.critical_exit):
            level = CRITICAL
        elif fraction >= self.threshold or (previous != NORMAL and fraction >= self.exit):
            level = PRESSURE
        else:
            level = NORMAL
        self.level = level
        if level != previous:
            log.warning(
                "memory level %s -> %s (%.1f MB of %.1f MB)", previous, level, used / 1048576, self.limit / 1048576
            )
        return previous, level

    def sample(self) -> tuple[str, str]:
        return self.update(resident_bytes() if self.enabled else None)
