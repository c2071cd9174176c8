"""OpenTelemetry traces and metrics for rustqueue: ``pip install 'rustqueue[otel]'``."""

from __future__ import annotations

__version__ = "0.1.0"

METADATA_KEY = "otel"
