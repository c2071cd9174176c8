"""Fixtures of the postgres backend's tests: a fresh schema per test on a real PostgreSQL.

The server comes from ``RUSTQUEUE_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
when it cannot be reached every test here is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio

PG_URL = os.environ.get("RUSTQUEUE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

_reachable: tuple[bool, str] | None = None


def _check_reachable() -> tuple[bool, str]:
    async def probe() -> None:
        conn = await asyncpg.connect(urlsplit(PG_URL)._replace(query="").geturl(), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return False, f"PostgreSQL at {PG_URL} is unreachable ({exc}); set RUSTQUEUE_TEST_POSTGRES"
    return True, ""


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    global _reachable
    if _reachable is None:
        _reachable = _check_reachable()
    ok, reason = _reachable
    if not ok:
        pytest.skip(reason)
    return PG_URL


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(urlsplit(PG_URL)._replace(query="").geturl(), timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def pg_schema(postgres_base_url: str) -> AsyncIterator[str]:
    schema = f"rq_pgtest_{secrets.token_hex(5)}"
    yield schema
    await drop_schema(schema)


@pytest.fixture
def pg_url(postgres_base_url: str, pg_schema: str) -> str:
    return f"{postgres_base_url}?schema={pg_schema}"


@pytest_asyncio.fixture
async def pg_storage(pg_url: str) -> AsyncIterator[object]:
    from rustqueue_postgres.storage import PostgresStorage

    storage = PostgresStorage(pg_url)
    await storage.open()
    yield storage
    await storage.close()
