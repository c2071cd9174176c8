"""Entry point of the otel plugin."""

from __future__ import annotations

from rustqueue_core import hookimpl  # noqa: F401
