"""The SQLite backend against the storage conformance classes (direct and hybrid modes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from rustqueue_core.builtin.sqlite import create_storage
from rustqueue_core.storage import Storage
from rustqueue_core.testing.conformance import StorageConformance
from rustqueue_core.testing.conformance_concurrency import StorageConcurrencyConformance
from rustqueue_core.testing.conformance_crash import StorageCrashConformance


def _factory(tmp_path: Path, query: str) -> Callable[..., Any]:
    opened: list[Storage] = []
    counter = iter(range(1_000_000))

    async def make(url: str | None = None, **options: Any) -> Storage:
        target = url or f"sqlite:///{tmp_path / f'store-{next(counter)}.db'}{query}"
        storage = create_storage(target, options)
        await storage.open()
        opened.append(storage)
        return storage

    make.opened = opened  # type: ignore[attr-defined]
    return make


@pytest_asyncio.fixture
async def storage_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    make = _factory(tmp_path, "")
    yield make
    for storage in make.opened:  # type: ignore[attr-defined]
        await storage.close()


class TestSQLiteStorage(StorageConformance):
    pass


@pytest.fixture
def storage_url_for_subprocess(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


class TestSQLiteConcurrency(StorageConcurrencyConformance):
    pass


class TestSQLiteCrash(StorageCrashConformance):
    pass


@pytest_asyncio.fixture
async def hybrid_storage_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    make = _factory(tmp_path, "?mode=hybrid&snapshot_interval=0.2")
    yield make
    for storage in make.opened:  # type: ignore[attr-defined]
        await storage.close()


class _Hybrid:
    @pytest.fixture
    def storage_factory(self, hybrid_storage_factory: Callable[..., Any]) -> Callable[..., Any]:
        return hybrid_storage_factory

    @pytest.fixture
    def storage_url_for_subprocess(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'shared-hybrid.db'}?mode=hybrid&snapshot_interval=0.2"


class TestHybridStorage(_Hybrid, StorageConformance):
    pass


class TestHybridConcurrency(_Hybrid, StorageConcurrencyConformance):
    pass


class TestHybridCrash(_Hybrid, StorageCrashConformance):
    pass
