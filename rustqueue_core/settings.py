"""Engine settings: one immutable struct built by the builder or from the config file."""

from __future__ import annotations

import re

import msgspec

from rustqueue_core.errors import ConfigError
from rustqueue_core.models import JobDefaults, QueueConfig

_TTL_RE = re.compile(r"^(\d+)([smhd])$")
_TTL_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_ttl(value: str | int | None, what: str = "ttl") -> int | None:
    """``30s``/``5m``/``24h``/``7d`` → milliseconds; ``off`` (or None) → None. Ints are milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like '7d' or 'off', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{what}: must not be negative")
        return value
    text = str(value).strip().lower()
    if text == "off":
        return None
    m = _TTL_RE.match(text)
    if not m:
        raise ConfigError(f"{what}: expected an integer followed by s, m, h or d, or 'off'; got {value!r}")
    return int(m.group(1)) * _TTL_UNITS_MS[m.group(2)]


class RetentionSettings(msgspec.Struct, kw_only=True, frozen=True):
    completed_ttl_ms: int | None = 7 * 86_400_000
    dlq_ttl_ms: int | None = 90 * 86_400_000
    cancelled_ttl_ms: int | None = 7 * 86_400_000
    failed_ttl_ms: int | None = 30 * 86_400_000
    interval_ms: int = 60_000


class EngineSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Every engine knob (SEMANTICS §7.1). Bad values raise ``ConfigError`` from ``validate``."""

    stall_timeout_ms: int = 30_000
    tick_interval_ms: int = 1_000
    stall_check_interval_ms: int = 0
    reconcile_interval_ms: int = 10_000
    max_dag_depth: int = 10
    max_backoff_ms: int = 604_800_000
    retention: RetentionSettings = RetentionSettings()
    job_defaults: JobDefaults = msgspec.field(default_factory=JobDefaults)
    queues: tuple[QueueConfig, ...] = ()
    housekeeping: bool = True
    memory_limit_mb: float | None = None
    memory_pressure_threshold: float = 0.80
    memory_critical_threshold: float = 1.0
    memory_exit_threshold: float | None = None
    housekeeping_batch: int = 1_000

    def validate(self) -> EngineSettings:
        if self.tick_interval_ms <= 0:
            raise ConfigError("tick_interval must be greater than zero")
        if self.stall_timeout_ms <= 0:
            raise ConfigError("stall_timeout must be greater than zero")
        if self.max_dag_depth < 1:
            raise ConfigError("max_dag_depth must be at least 1")
        if self.memory_limit_mb is not None and self.memory_limit_mb <= 0:
            raise ConfigError("memory_limit_mb must be greater than zero")
        if not 0 < self.memory_pressure_threshold <= 1:
            raise ConfigError("memory_pressure_threshold must be in (0, 1]")
        if not self.memory_pressure_threshold <= self.memory_critical_threshold <= 1.5:
            raise ConfigError("memory_critical_threshold must be at least memory_pressure_threshold (and <= 1.5)")
        exit_threshold = self.memory_exit_threshold
        if exit_threshold is not None and not 0 < exit_threshold <= self.memory_pressure_threshold:
            raise ConfigError("memory_exit_threshold must be in (0, memory_pressure_threshold]")
        return self
