"""The ``[metrics]`` configuration section (PROTOCOL §7.1; these keys take effect here)."""

from __future__ import annotations

import msgspec


class MetricsConfig(msgspec.Struct, kw_only=True):
    #: Serve the Prometheus text exposition. When false its route answers 503 ``Metrics not available``.
    prometheus_enabled: bool = True
    prometheus_path: str = "/api/v1/metrics/prometheus"
    #: The JSON summary route.
    json_path: str = "/api/v1/metrics"
    #: Queue gauges are read from the engine at scrape time and reused for this long.
    scrape_cache_ms: int = 1_000

    def validate(self) -> MetricsConfig:
        from rustqueue_core.errors import ConfigError

        for key in ("prometheus_path", "json_path"):
            value = getattr(self, key)
            if not value.startswith("/"):
                raise ConfigError(f"metrics.{key} must start with '/', got {value!r}")
        if self.prometheus_path == self.json_path:
            raise ConfigError("metrics.prometheus_path and metrics.json_path must differ")
        if self.scrape_cache_ms < 0:
            raise ConfigError("metrics.scrape_cache_ms must not be negative")
        return self
