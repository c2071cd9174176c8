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
    def __init__(self, limit_mb: float | None, threshold: float = 0.80, critical: float = 1.0) -> None:
        self.limit = int(limit_mb * 1024 * 1024) if limit_mb else None
        self.threshold = threshold
        self.critical = critical
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
        limit = self.limit
        pressure_at = self.threshold * limit
        critical_at = self.critical * limit
        margin = _HYSTERESIS * limit
        level = self.level
        if used >= critical_at:
            level = CRITICAL
        elif level == CRITICAL:
            if used < critical_at - margin:
                level = PRESSURE if used >= pressure_at - margin else NORMAL
        elif used >= pressure_at:
            level = PRESSURE
        elif level == PRESSURE and used < pressure_at - margin:
            level = NORMAL
        self.level = level
        if level != previous:
            log.warning("memory level %s -> %s (%d bytes of %d)", previous, level, used, limit)
        return previous, level

    def sample(self) -> tuple[str, str]:
        return self.update(resident_bytes() if self.enabled else None)
