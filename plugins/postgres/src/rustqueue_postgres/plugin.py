"""Entry point of the postgres plugin."""

from __future__ import annotations

from rustqueue_core import hookimpl  # noqa: F401
