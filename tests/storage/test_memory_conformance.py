"""The in-memory backend against the storage conformance classes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio

from rustqueue_core.storage import Storage
from rustqueue_core.testing.conformance import StorageConformance
from rustqueue_core.testing.conformance_concurrency import StorageConcurrencyConformance
from rustqueue_core.testing.conformance_crash import StorageCrashConformance
from rustqueue_core.testing.resolve import resolve_storage_spec


@pytest_asyncio.fixture
async def storage_factory() -> AsyncIterator[Callable[..., Any]]:
    opened: list[Storage] = []

    async def make(url: str | None = None, **options: Any) -> Storage:
        storage = resolve_storage_spec("memory://").factory(url or "memory://", options)
        await storage.open()
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        await storage.close()


class TestMemoryStorage(StorageConformance):
    pass


class TestMemoryConcurrency(StorageConcurrencyConformance):
    pass


class TestMemoryCrash(StorageCrashConformance):
    """Memory storage is not durable: every crash test skips with that reason."""
