"""The SQLite backend against the storage conformance classes, in direct and hybrid mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from rustqueue_core.testing.conformance import StorageConformance
from rustqueue_core.testing.conformance_concurrency import StorageConcurrencyConformance
from rustqueue_core.testing.conformance_crash import StorageCrashConformance
from rustqueue_core.testing.fixtures import StorageFactory

#: Hybrid stores flush every 0.2 s here, so crash tests wait out a short loss window.
HYBRID = "sqlite:///hybrid.db?mode=hybrid&snapshot_interval=0.2"


@pytest_asyncio.fixture
async def storage_factory(tmp_path: Path) -> AsyncIterator[StorageFactory]:
    """Fresh SQLite files under the test's temp dir, whatever ``--rustqueue-storage`` says."""
    factory = StorageFactory("sqlite", tmp_path)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def storage_url_for_subprocess(storage_factory: StorageFactory) -> str:
    return storage_factory.fresh_url()


class TestSQLiteStorage(StorageConformance):
    pass


class TestSQLiteConcurrency(StorageConcurrencyConformance):
    pass


class TestSQLiteCrash(StorageCrashConformance):
    pass


class _Hybrid:
    @pytest_asyncio.fixture
    async def storage_factory(self, tmp_path: Path) -> AsyncIterator[StorageFactory]:
        factory = StorageFactory(HYBRID, tmp_path)
        try:
            yield factory
        finally:
            await factory.aclose()


class TestHybridStorage(_Hybrid, StorageConformance):
    pass


class TestHybridConcurrency(_Hybrid, StorageConcurrencyConformance):
    pass


class TestHybridCrash(_Hybrid, StorageCrashConformance):
    pass
