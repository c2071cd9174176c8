"""DuckDB job history and analytics for rustqueue: ``pip install 'rustqueue[duckdb]'``.

Not a claim store: it archives finished jobs for questions asked afterwards.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["History", "HistoryPlugin", "__version__"]


def __getattr__(name: str) -> object:
    if name == "History":
        from rustqueue_duckdb.history import History

        return History
    if name == "HistoryPlugin":
        from rustqueue_duckdb.plugin import HistoryPlugin

        return HistoryPlugin
    raise AttributeError(name)
