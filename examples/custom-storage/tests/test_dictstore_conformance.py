"""DictStorage against the storage contract every rustqueue backend passes.

Subclassing the shared conformance classes is all a backend's test suite needs beyond its own
``storage_factory`` fixture: ``await storage_factory()`` returns a fresh, opened, empty store, and
every store it made is closed at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from rustqueue_dictstore import DictStorage
from rustqueue_dictstore.plugin import DICT_SPEC

from rustqueue_core.testing.conformance import StorageConformance
from rustqueue_core.testing.conformance_concurrency import StorageConcurrencyConformance
from rustqueue_core.testing.conformance_crash import StorageCrashConformance


class DictStorageFactory:
    """Fresh stores for each call. ``url`` and ``spec`` tell the suite what it is testing."""

    url = "dict://"
    spec = DICT_SPEC

    def __init__(self) -> None:
        self.opened: list[DictStorage] = []

    async def __call__(self, url: str | None = None, **options: Any) -> DictStorage:
        storage = DictStorage(url or self.url, options)
        await storage.open()
        self.opened.append(storage)
        return storage

    async def aclose(self) -> None:
        for storage in self.opened:
            await storage.close()


@pytest_asyncio.fixture
async def storage_factory() -> AsyncIterator[DictStorageFactory]:
    factory = DictStorageFactory()
    try:
        yield factory
    finally:
        await factory.aclose()


class TestDictStorageConformance(StorageConformance):
    """Every contract test, run on DictStorage."""


class TestDictStorageConcurrency(StorageConcurrencyConformance):
    """Claim exclusivity and atomic unique keys. The cross-process tests skip: the store declares
    no ``multi_process`` (a backend that does also provides a ``storage_url_for_subprocess`` fixture)."""


class TestDictStorageCrash(StorageCrashConformance):
    """Skipped with the reason that the store is neither durable nor write-back; a durable backend
    inherits kill -9 recovery checks from here."""
