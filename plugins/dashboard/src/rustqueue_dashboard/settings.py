"""The ``[dashboard]`` configuration section (no web framework imported here)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from rustqueue_core.errors import ConfigError

DEFAULT_PREFIX = "/dashboard"


class DashboardConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """``[dashboard]``: whether the dashboard is served, where, and how much history it keeps."""

    enabled: bool = True
    path_prefix: str = DEFAULT_PREFIX
    #: Seconds between two samples of the per-queue time series (charts).
    sample_interval_s: float = 5.0
    #: Samples kept per queue (120 × 5 s = the last 10 minutes).
    series_points: int = 120
    #: Server log lines kept for the log view.
    log_lines: int = 1000
    #: Lowest level of the log lines captured for the log view.
    log_level: str = "INFO"

    def validate(self) -> DashboardConfig:
        prefix = "/" + self.path_prefix.strip().strip("/")
        if prefix == "/" or any(c in prefix for c in " ?#{}"):
            raise ConfigError(f"[dashboard] path_prefix must be a path like /dashboard (got {self.path_prefix!r})")
        if prefix.startswith("/api/"):
            raise ConfigError("[dashboard] path_prefix must not be under /api/")
        if not 0.2 <= self.sample_interval_s <= 3600:
            raise ConfigError("[dashboard] sample_interval_s must be between 0.2 and 3600")
        if not 2 <= self.series_points <= 100_000:
            raise ConfigError("[dashboard] series_points must be between 2 and 100000")
        if not 10 <= self.log_lines <= 1_000_000:
            raise ConfigError("[dashboard] log_lines must be between 10 and 1000000")
        if not isinstance(logging.getLevelName(self.log_level.upper()), int):
            raise ConfigError(f"[dashboard] log_level {self.log_level!r} is not a logging level")
        return msgspec.structs.replace(self, path_prefix=prefix, log_level=self.log_level.upper())

    @property
    def log_level_number(self) -> int:
        level = logging.getLevelName(self.log_level)
        return level if isinstance(level, int) else logging.INFO


def dashboard_config(config: Any | None) -> DashboardConfig:
    """The validated ``[dashboard]`` section of ``config`` (a ``rustqueue_core.config.Config``), or the
    defaults when there is no configuration (an embedded engine)."""
    if config is None:
        return DashboardConfig()
    section: DashboardConfig = config.section("dashboard", DashboardConfig)
    return section.validate()


def config_of_engine(engine: Any) -> DashboardConfig:
    host = getattr(engine, "host", None)
    return dashboard_config(getattr(host, "config", None) if host is not None else None)
