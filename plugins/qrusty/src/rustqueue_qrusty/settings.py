"""qrusty's settings (environment, config file, flags), read without importing any server library.

Every setting has a config key under ``[qrusty]`` and qrusty's own environment variable; the option
registry (``rustqueue_add_options``) makes the environment win over the file and flags over both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rustqueue_core.errors import ConfigError

DEFAULT_PORT = 6784
DEFAULT_LOCK_TIMEOUT_SECS = 30
DEFAULT_MAX_RETRIES = 3
CGROUP_MEMORY_MAX = "/sys/fs/cgroup/memory.max"
CGROUP_V1_LIMIT = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
#: cgroup v1 reports "no limit" as a huge page-aligned number rather than "max".
_CGROUP_V1_UNLIMITED = 1 << 60

#: (config key, environment variable, type, default, help) of every qrusty option.
OPTIONS: tuple[tuple[str, str, type, Any, str], ...] = (
    ("qrusty.port", "QRUSTY_PORT", int, DEFAULT_PORT, "port of the qrusty-compatible API"),
    (
        "qrusty.memory_limit_mb",
        "QRUSTY_MEMORY_LIMIT_MB",
        str,
        "auto",
        "memory budget in MB, or auto (cgroup limit, else total RAM)",
    ),
    (
        "qrusty.memory_pressure_threshold",
        "QRUSTY_MEMORY_PRESSURE_THRESHOLD",
        float,
        0.80,
        "fraction of the budget that enters the warning level",
    ),
    (
        "qrusty.memory_critical_threshold",
        "QRUSTY_MEMORY_CRITICAL_THRESHOLD",
        float,
        0.90,
        "fraction of the budget that enters the critical level (publishes refused)",
    ),
    (
        "qrusty.memory_exit_threshold",
        "QRUSTY_MEMORY_PRESSURE_EXIT_THRESHOLD",
        float,
        0.70,
        "fraction of the budget below which pressure ends",
    ),
    (
        "qrusty.memory_check_interval_ms",
        "QRUSTY_MEMORY_CHECK_INTERVAL_MS",
        int,
        500,
        "how often resident memory is sampled",
    ),
    ("qrusty.storage_mode", "STORAGE_MODE", str, None, "rocksdb (durable default storage) or memory"),
    ("qrusty.ws_ping_interval_secs", "WS_PING_INTERVAL_SECS", float, 30.0, "WebSocket ping interval"),
    (
        "qrusty.ws_ping_timeout_secs",
        "WS_PING_TIMEOUT_SECS",
        float,
        10.0,
        "seconds without a pong before a WebSocket peer is dropped",
    ),
)


@dataclass(frozen=True)
class MemorySettings:
    """qrusty's memory levels as fractions of ``limit_bytes`` (None: no budget could be found)."""

    limit_bytes: int | None
    pressure: float = 0.80
    critical: float = 0.90
    exit: float = 0.70
    check_interval_s: float = 0.5
    explicit: bool = False

    def validate(self) -> MemorySettings:
        if not 0 < self.exit <= self.pressure <= self.critical <= 1:
            raise ConfigError(
                "qrusty memory thresholds must satisfy 0 < exit <= pressure <= critical <= 1 "
                f"(got exit {self.exit}, pressure {self.pressure}, critical {self.critical})"
            )
        if self.limit_bytes is not None and self.limit_bytes <= 0:
            raise ConfigError("QRUSTY_MEMORY_LIMIT_MB must be greater than zero")
        if self.check_interval_s <= 0:
            raise ConfigError("qrusty.memory_check_interval_ms must be greater than zero")
        return self


@dataclass(frozen=True)
class QrustySettings:
    host: str
    port: int
    memory: MemorySettings
    #: the port came from a flag, the environment or the config file (not the default 6784)
    port_explicit: bool
    ws_ping_interval_s: float
    ws_ping_timeout_s: float


def detect_memory_limit_bytes() -> int | None:
    """The cgroup's memory limit (v2, then v1), else the machine's total RAM, else None."""
    for path in (CGROUP_MEMORY_MAX, CGROUP_V1_LIMIT):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text and text != "max":
            try:
                value = int(text)
            except ValueError:
                continue
            if 0 < value < _CGROUP_V1_UNLIMITED:
                return value
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _get(config: Any, key: str, default: Any) -> Any:
    if config is None:
        return default
    value = config.get(key, default)
    return default if value is None else value


def _float(config: Any, key: str, default: float) -> float:
    value = _get(config, key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None


def memory_settings(config: Any) -> MemorySettings:
    raw = _get(config, "qrusty.memory_limit_mb", "auto")
    explicit = str(raw).strip().lower() not in ("", "auto")
    if explicit:
        try:
            limit: int | None = int(float(raw) * 1024 * 1024)
        except (TypeError, ValueError):
            raise ConfigError(f"QRUSTY_MEMORY_LIMIT_MB: expected a number of MB or auto, got {raw!r}") from None
    else:
        limit = detect_memory_limit_bytes()
    return MemorySettings(
        limit_bytes=limit,
        pressure=_float(config, "qrusty.memory_pressure_threshold", 0.80),
        critical=_float(config, "qrusty.memory_critical_threshold", 0.90),
        exit=_float(config, "qrusty.memory_exit_threshold", 0.70),
        check_interval_s=_float(config, "qrusty.memory_check_interval_ms", 500) / 1000,
        explicit=explicit,
    ).validate()


def qrusty_settings(config: Any) -> QrustySettings:
    port = _get(config, "qrusty.port", DEFAULT_PORT)
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ConfigError(f"qrusty.port: expected a port number, got {port!r}") from None
    explicit = (
        config is not None
        and config.has("qrusty.port")
        and getattr(config, "sources", {}).get("qrusty.port") != "default"
    )
    return QrustySettings(
        host=str(_get(config, "server.host", "0.0.0.0")),
        port=port,
        port_explicit=bool(explicit),
        memory=memory_settings(config),
        ws_ping_interval_s=_float(config, "qrusty.ws_ping_interval_secs", 30.0),
        ws_ping_timeout_s=_float(config, "qrusty.ws_ping_timeout_secs", 10.0),
    )


def storage_url_for_mode(mode: str | None, current: Mapping[str, Any]) -> str | None:
    """``STORAGE_MODE=memory`` → ``memory://`` unless a storage was chosen explicitly; ``rocksdb`` (the
    default) keeps rustqueue's durable default storage. Anything else is a configuration error."""
    if mode is None or str(mode).strip() == "":
        return None
    value = str(mode).strip().lower()
    if value == "rocksdb":
        return None
    if value != "memory":
        raise ConfigError(f"STORAGE_MODE must be rocksdb or memory (got {mode!r})")
    if current.get("storage.url") or current.get("storage.backend"):
        return None
    return "memory://"
