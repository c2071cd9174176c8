"""Entry point of the postgres plugin: offers the ``postgres`` storage backend.

Imports only ``rustqueue_core`` at top level; SQLAlchemy and asyncpg load when a storage is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl
from rustqueue_core.models import Capabilities, StorageSpec

if TYPE_CHECKING:
    from rustqueue_postgres.storage import PostgresStorage

#: Declared capabilities (an instance opened with ``?notify=off`` reports ``wakeups=False``).
CAPABILITIES = Capabilities(
    durable=True,
    power_safe=True,
    multi_process=True,
    multi_node=True,
    wakeups=True,
    claims_due_delayed=True,
    group_limits=True,
    transactional_enqueue=True,
    max_batch=10_000,
)


def create_storage(url: str, options: Mapping[str, Any]) -> PostgresStorage:
    from rustqueue_postgres.storage import PostgresStorage

    return PostgresStorage(url, options)


SPEC = StorageSpec(
    name="postgres",
    schemes=("postgresql", "postgres", "postgresql+asyncpg"),
    description="PostgreSQL: many processes and hosts, SKIP LOCKED batch claims, LISTEN/NOTIFY wake-ups",
    capabilities=CAPABILITIES,
    factory=create_storage,
)


@hookimpl
def rustqueue_storage_backends() -> StorageSpec:
    return SPEC
