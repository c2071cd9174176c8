"""Transactional enqueue: jobs pushed inside the application's own transaction commit or roll back
with it, through the engine's push pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from rustqueue_postgres import push_batch_in_transaction, push_in_transaction
from rustqueue_postgres.storage import PostgresStorage
from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rustqueue_core.clock import ManualClock
from rustqueue_core.engine import RustQueue
from rustqueue_core.errors import DuplicateKey, QueuePaused, ValidationError
from rustqueue_core.settings import EngineSettings


@pytest_asyncio.fixture
async def rq(pg_url: str) -> AsyncIterator[Any]:
    engine = RustQueue(PostgresStorage(pg_url), settings=EngineSettings(housekeeping=False), clock=ManualClock())
    await engine.start()
    yield engine
    await engine.close()


@pytest_asyncio.fixture
async def app_engine(postgres_base_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(postgres_base_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    yield engine
    await engine.dispose()


def orders_table(schema: str) -> Table:
    return Table("orders", MetaData(schema=schema), Column("id", Integer, primary_key=True))


async def test_commit_stores_row_and_job_together(rq: Any, app_engine: AsyncEngine, pg_schema: str) -> None:
    orders = orders_table(pg_schema)
    events: list[Any] = []
    rq.add_listener(events.extend)
    async with app_engine.begin() as conn:
        await conn.run_sync(orders.metadata.create_all)
    async with app_engine.begin() as conn:
        await conn.execute(orders.insert().values(id=1))
        job_id = await push_in_transaction(rq, conn, "emails", "confirm", {"order": 1}, priority=5)
        assert await rq.get_job(job_id) is None  # not visible outside the transaction yet
        assert events == []
    job = await rq.get_job(job_id)
    assert job is not None and job.data == {"order": 1} and job.priority == 5 and job.state == "waiting"
    assert [e.kind for e in events] == ["job.pushed"]
    (claimed,) = await rq.claim("emails")
    assert claimed.id == job_id


async def test_rollback_discards_row_and_job(rq: Any, app_engine: AsyncEngine, pg_schema: str) -> None:
    orders = orders_table(pg_schema)
    events: list[Any] = []
    rq.add_listener(events.extend)
    async with app_engine.begin() as conn:
        await conn.run_sync(orders.metadata.create_all)
    with pytest.raises(RuntimeError, match="payment declined"):
        async with app_engine.begin() as conn:
            await conn.execute(orders.insert().values(id=2))
            ids = await push_batch_in_transaction(
                rq, conn, [{"name": "a"}, {"name": "b", "data": {"x": 1}}], queue="emails"
            )
            raise RuntimeError("payment declined")
    assert await rq.get_jobs(ids) == [None, None]
    async with app_engine.connect() as conn:
        assert (await conn.execute(select(orders))).all() == []
    assert events == []
    assert await rq.claim("emails") == []


async def test_pipeline_rules_apply_and_a_held_key_leaves_the_transaction_usable(
    rq: Any, app_engine: AsyncEngine, pg_schema: str
) -> None:
    orders = orders_table(pg_schema)
    async with app_engine.begin() as conn:
        await conn.run_sync(orders.metadata.create_all)
    held = await rq.push("emails", "first", unique_key="k")
    async with app_engine.begin() as conn:
        await conn.execute(orders.insert().values(id=3))
        with pytest.raises(ValidationError):
            await push_in_transaction(rq, conn, "bad queue name", "x")
        with pytest.raises(DuplicateKey) as info:
            await push_in_transaction(rq, conn, "emails", "second", unique_key="k")
        assert info.value.existing_id == held
        other = await push_in_transaction(rq, conn, "emails", "third")
    assert (await rq.get_job(other)) is not None
    async with app_engine.connect() as conn:
        assert (await conn.execute(select(orders.c.id))).scalars().all() == [3]
    await rq.pause_queue("emails")
    async with app_engine.begin() as conn:
        with pytest.raises(QueuePaused):
            await push_in_transaction(rq, conn, "emails", "fourth")


async def test_storage_insert_on_a_caller_connection_is_all_or_nothing(
    pg_storage: PostgresStorage, app_engine: AsyncEngine
) -> None:
    from datetime import UTC, datetime

    from rustqueue_core.ids import new_ids
    from rustqueue_core.models import Job
    from rustqueue_core.storage import InsertConflict

    now = datetime(2026, 1, 1, tzinfo=UTC)
    held, fresh, dup, kept = (
        Job(id=i, name="n", queue="q", unique_key=key, created_at=now, updated_at=now, sort_key=raw)
        for (i, raw), key in zip(new_ids(4), ["k", None, "k", None], strict=True)
    )
    await pg_storage.insert_jobs([held], now)
    async with app_engine.begin() as conn:
        with pytest.raises(InsertConflict) as info:
            await pg_storage.insert_jobs([fresh, dup], now, connection=conn)
        assert (info.value.index, info.value.holder_id) == (1, held.id)
        await pg_storage.insert_jobs([kept], now, connection=conn)
    assert await pg_storage.get_jobs([fresh.id, dup.id, kept.id]) == [None, None, kept]
