"""Pytest options, hooks and fixtures of the ``rustqueue_core.testing`` plugin."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import pytest_asyncio

from rustqueue_core.clock import Clock, ManualClock
from rustqueue_core.models import StorageSpec
from rustqueue_core.storage import Storage
from rustqueue_core.testing.resolve import resolve_storage_spec, url_scheme, with_query, without_query

STORAGE_OPTION = "--rustqueue-storage"
#: Default value of the option: a fresh SQLite file per test.
DEFAULT_STORAGE = "sqlite"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rustqueue")
    group.addoption(
        STORAGE_OPTION,
        action="store",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help="storage the engine fixtures run on: 'sqlite' (default, a fresh file per test), 'memory://', "
        "'sqlite:///path.db?mode=hybrid', or 'postgresql://user@host/db' (a fresh schema per test)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rustqueue_storage(*schemes): run only when --rustqueue-storage selects one of these URL schemes",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("rustqueue_storage")
    if marker is None:
        return
    selected = _selected_scheme(item.config)
    if selected not in marker.args:
        pytest.skip(f"backend-specific test for {', '.join(marker.args)}; selected storage is {selected}")


def _selected_option(config: pytest.Config) -> str:
    return str(config.getoption(STORAGE_OPTION, default=DEFAULT_STORAGE) or DEFAULT_STORAGE)


def _selected_scheme(config: pytest.Config) -> str:
    value = _selected_option(config)
    scheme = DEFAULT_STORAGE if value == DEFAULT_STORAGE else url_scheme(value)
    return "postgres" if scheme.startswith("postgres") else scheme


def _is_postgres(url: str) -> bool:
    return url_scheme(url).startswith("postgres")


class StorageFactory:
    """Builds fresh, opened storages of one backend and closes them all at teardown.

    ``await factory()`` gives a fresh empty store; ``await factory(url)`` opens exactly ``url`` (reopen a
    store after closing it, as a restart test does). Keyword options go to ``StorageSpec.factory``.
    """

    def __init__(self, base: str, tmp_path: Path) -> None:
        self._base = base
        self._tmp_path = tmp_path
        self._counter = 0
        self._opened: list[Storage] = []
        self._schemas: list[tuple[str, str]] = []  # (url without schema, schema) to drop at teardown
        self.url = self._next_url()

    @property
    def spec(self) -> StorageSpec:
        return resolve_storage_spec(self.url)

    def _next_url(self) -> str:
        self._counter += 1
        base = self._base
        if base == DEFAULT_STORAGE:
            suffix = "" if self._counter == 1 else f"-{self._counter}"
            return f"sqlite:///{self._tmp_path / f'rustqueue{suffix}.db'}"
        if _is_postgres(base):
            schema = f"rq_test_{secrets.token_hex(6)}"
            self._schemas.append((without_query(base, ["schema"]), schema))
            return with_query(base, schema=schema)
        if url_scheme(base) == "sqlite":
            # a fresh file per store under the test's temp dir, with the configured options
            query = urlsplit(base).query
            suffix = "" if self._counter == 1 else f"-{self._counter}"
            path = self._tmp_path / f"rustqueue{suffix}.db"
            return f"sqlite:///{path}" + (f"?{query}" if query else "")
        return base

    def fresh_url(self) -> str:
        """A URL for a store nobody has opened yet (the first call returns :attr:`url`)."""
        if self._counter == 1 and not self._opened:
            return self.url
        return self._next_url()

    async def __call__(self, url: str | None = None, **options: Any) -> Storage:
        target = url if url is not None else self.fresh_url()
        storage = resolve_storage_spec(target).factory(target, options)
        await storage.open()
        self._opened.append(storage)
        return storage

    async def aclose(self) -> None:
        errors: list[BaseException] = []
        for storage in reversed(self._opened):
            try:
                await storage.close()
            except Exception as exc:
                errors.append(exc)
        self._opened.clear()
        for url, schema in self._schemas:
            await _drop_postgres_schema(url, schema)
        if errors:
            raise errors[0]


async def _drop_postgres_schema(url: str, schema: str) -> None:
    """Best effort: a leftover schema is harmless, so failures only warn."""
    try:
        import asyncpg  # optional: present wherever the postgres backend is installed
    except ImportError:
        return
    parts = urlsplit(url)
    dsn = parts._replace(scheme="postgresql", query="").geturl()
    if dict(parse_qsl(parts.query)).get("schema") is not None:
        dsn = without_query(dsn, ["schema"])
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    except Exception as exc:
        warnings.warn(f"could not drop test schema {schema}: {exc}", stacklevel=1)


@pytest.fixture
def manual_clock() -> ManualClock:
    """A virtual clock starting at 2026-01-01T00:00:00Z; time moves only with ``advance``."""
    return ManualClock()


@pytest_asyncio.fixture
async def storage_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageFactory]:
    factory = StorageFactory(_selected_option(request.config), tmp_path)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def storage_url(storage_factory: StorageFactory) -> str:
    """The effective URL of the selected backend for this test: the store ``storage_factory()`` opens
    first (``sqlite:///<tmp>/rustqueue.db`` by default)."""
    return storage_factory.url


class EngineFactory:
    """``await engine_factory(clock=None, settings=None, storage=None, start=True)`` → a RustQueue over a
    fresh storage of the selected backend; every engine is closed at teardown."""

    def __init__(self, storages: StorageFactory) -> None:
        self._storages = storages
        self._engines: list[Any] = []

    async def __call__(
        self,
        clock: Clock | None = None,
        settings: Any = None,
        storage: Storage | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> Any:
        from rustqueue_core.engine import RustQueue
        from rustqueue_core.settings import EngineSettings

        spec: StorageSpec | None = None
        if storage is None:
            storage = await self._storages()
            spec = self._storages.spec
        engine = RustQueue(
            storage,
            settings=settings if settings is not None else EngineSettings(),
            clock=clock,
            host=kwargs.pop("host", None),
            storage_spec=kwargs.pop("storage_spec", spec),
            **kwargs,
        )
        self._engines.append(engine)
        if start:
            await engine.start()
        return engine

    async def aclose(self) -> None:
        errors: list[BaseException] = []
        for engine in reversed(self._engines):
            try:
                await engine.close(grace=5.0)
            except Exception as exc:
                errors.append(exc)
        self._engines.clear()
        if errors:
            raise errors[0]


@pytest_asyncio.fixture
async def engine_factory(storage_factory: StorageFactory) -> AsyncIterator[EngineFactory]:
    factory = EngineFactory(storage_factory)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest_asyncio.fixture
async def rq(engine_factory: EngineFactory, manual_clock: ManualClock) -> Any:
    """A started engine on the selected backend, driven by ``manual_clock``, housekeeping off
    (run a pass with ``await rq.tick()``)."""
    from rustqueue_core.settings import EngineSettings

    return await engine_factory(clock=manual_clock, settings=EngineSettings(housekeeping=False))
