"""The postgres backend against the storage conformance classes, each test in a fresh schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from rustqueue_core.testing.conformance import StorageConformance
from rustqueue_core.testing.conformance_concurrency import StorageConcurrencyConformance
from rustqueue_core.testing.conformance_crash import StorageCrashConformance
from rustqueue_core.testing.fixtures import StorageFactory


@pytest_asyncio.fixture
async def storage_factory(postgres_base_url: str, tmp_path: Path) -> AsyncIterator[StorageFactory]:
    factory = StorageFactory(postgres_base_url, tmp_path)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def storage_url_for_subprocess(storage_factory: StorageFactory) -> str:
    """A fresh schema (dropped with the factory's others at teardown) that a child process opens."""
    return storage_factory.fresh_url()


class TestPostgresStorage(StorageConformance):
    pass


class TestPostgresConcurrency(StorageConcurrencyConformance):
    pass


class TestPostgresCrash(StorageCrashConformance):
    pass
