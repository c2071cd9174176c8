"""Prometheus metrics for rustqueue.

Importing this package loads neither prometheus_client nor Litestar.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "metrics_for"]


def __getattr__(name: str) -> object:
    if name == "metrics_for":
        from rustqueue_metrics.plugin import metrics_for

        return metrics_for
    raise AttributeError(f"module 'rustqueue_metrics' has no attribute {name!r}")
