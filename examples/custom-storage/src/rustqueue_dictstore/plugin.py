"""Entry point module (group ``rustqueue``): offers ``DictStorage`` for ``dict://`` URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rustqueue_core import StorageSpec, hookimpl
from rustqueue_dictstore.storage import DictStorage


def create_storage(url: str, options: Mapping[str, Any]) -> DictStorage:
    # The engine opens the store itself (``await storage.open()`` in ``start()``).
    return DictStorage(url, options)


DICT_SPEC = StorageSpec(
    name="dictstore",
    schemes=("dict",),
    description="In-memory dict storage: a skeleton to start a storage plugin from (not durable)",
    capabilities=DictStorage.capabilities,
    factory=create_storage,
)


@hookimpl
def rustqueue_storage_backends() -> StorageSpec:
    return DICT_SPEC
