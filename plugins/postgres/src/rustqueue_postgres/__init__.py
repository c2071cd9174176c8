"""PostgreSQL storage for rustqueue: many nodes, SKIP LOCKED claims.

Public names load lazily, so the plugin's entry point stays free of SQLAlchemy and asyncpg imports::

    from rustqueue_postgres import PostgresStorage, push_in_transaction
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "PostgresStorage",
    "StorageUnavailable",
    "open_postgres",
    "push_batch_in_transaction",
    "push_in_transaction",
]

_LAZY = {
    "PostgresStorage": "rustqueue_postgres.storage",
    "open_postgres": "rustqueue_postgres.storage",
    "StorageUnavailable": "rustqueue_postgres.connection",
    "push_in_transaction": "rustqueue_postgres.transactional",
    "push_batch_in_transaction": "rustqueue_postgres.transactional",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rustqueue_postgres' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
