"""rustqueue's opt-in pytest plugin: storage fixtures and the storage conformance classes.

Enable it with ``-p rustqueue_core.testing`` (in ``addopts``); it needs the ``rustqueue[testing]``
extra. Option ``--rustqueue-storage=URL`` selects the backend every engine fixture runs on
(default: a fresh SQLite file per test). Fixtures: ``storage_url``, ``storage_factory``,
``engine_factory``, ``rq``, ``manual_clock``. Conformance classes: :class:`StorageConformance`,
:class:`StorageConcurrencyConformance`, :class:`StorageCrashConformance`. Helpers that wait for the
engine's background work with a deadline: :mod:`rustqueue_core.testing.waiting`. Marker
``@pytest.mark.rustqueue_storage("sqlite", ...)`` runs a backend-specific test only when the selected
storage has one of those schemes (and skips it with that reason otherwise).
"""

from __future__ import annotations

try:
    import pytest
    import pytest_asyncio  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rustqueue_core.testing is a pytest plugin and needs pytest and pytest-asyncio: "
        "pip install 'rustqueue[testing]'"
    ) from exc

pytest.register_assert_rewrite(
    "rustqueue_core.testing.conformance",
    "rustqueue_core.testing.conformance_queries",
    "rustqueue_core.testing.conformance_concurrency",
    "rustqueue_core.testing.conformance_crash",
    "rustqueue_core.testing.jobs",
    "rustqueue_core.testing.procs",
    "rustqueue_core.testing.waiting",
)

from rustqueue_core.testing.conformance import StorageConformance  # noqa: E402
from rustqueue_core.testing.conformance_concurrency import StorageConcurrencyConformance  # noqa: E402
from rustqueue_core.testing.conformance_crash import StorageCrashConformance  # noqa: E402
from rustqueue_core.testing.fixtures import (  # noqa: E402
    EngineFactory,
    StorageFactory,
    engine_factory,
    manual_clock,
    pytest_addoption,
    pytest_configure,
    pytest_runtest_setup,
    rq,
    storage_factory,
    storage_url,
)
from rustqueue_core.testing.resolve import resolve_storage_spec  # noqa: E402

__all__ = [
    "EngineFactory",
    "StorageConcurrencyConformance",
    "StorageConformance",
    "StorageCrashConformance",
    "StorageFactory",
    "engine_factory",
    "manual_clock",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_setup",
    "resolve_storage_spec",
    "rq",
    "storage_factory",
    "storage_url",
]
