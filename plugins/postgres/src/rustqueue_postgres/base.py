"""Connection handling shared by every operation of the PostgreSQL backend.

SQLAlchemy's asyncio engine owns URL handling and the pool applications share (the user-facing
transactional API); the backend's own statements run on asyncpg connections of a lean pool of its
own (``pool``), prepared and cached per connection. Each operation is one transaction; a dropped
connection is retried with backoff for ``retry_timeout`` seconds. Also here: the insert every write
path shares (and the row cache it fills), wake-ups and leadership.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import msgspec
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rustqueue_core.models import Job, copy_job
from rustqueue_core.storage import UNFINISHED_STATES, InsertConflict
from rustqueue_postgres.connection import (
    NulCharacter,
    StorageUnavailable,
    asyncpg_connect_kwargs,
    describe_open_error,
    has_nul_error,
    is_retryable,
)
from rustqueue_postgres.options import PostgresOptions, parse_url
from rustqueue_postgres.plugin import CAPABILITIES
from rustqueue_postgres.pool import ConnectionPool
from rustqueue_postgres.rowcache import RowCache
from rustqueue_postgres.schema import migrate, quote_schema
from rustqueue_postgres.sql import JSON_COLUMNS, Statements
from rustqueue_postgres.wakeups import Wakeups, channel_name

logger = logging.getLogger("rustqueue.postgres")

T = TypeVar("T")

_encode = msgspec.json.encode


class PostgresBase:
    """Pool, transactions and retries, migrations at open, the shared insert, wake-ups, leadership."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.options: PostgresOptions = parse_url(url, options)
        self.capabilities = msgspec.structs.replace(CAPABILITIES, wakeups=self.options.notify)
        self.schema = self.options.schema
        self._q = quote_schema(self.schema)
        self.channel = channel_name(self.schema)
        #: The NOTIFY channel, passed as the last parameter of statements that announce new work.
        self._notify_args: tuple[str, ...] = (self.channel,) if self.options.notify else ()
        self.sql = Statements(self._q, notify=self.options.notify)
        self._engine: AsyncEngine | None = None
        self._pool: ConnectionPool | None = None
        self._wakeups: Wakeups | None = None
        self._leader: Any = None
        self._transition_sql: dict[tuple[str, ...], str] = {}
        #: This instance's mark in the ``writer`` column, and its copy of the rows it wrote there.
        self._writer = secrets.randbits(63)
        self._cache = RowCache()
        sa_url = make_url(self.options.sqlalchemy_url)
        self._user = sa_url.username

    # ------------------------------------------------------------------ lifecycle
    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (open storage only): share its pool for your own statements."""
        if self._engine is None:
            raise RuntimeError("postgres storage is not open")
        return self._engine

    def _server_settings(self) -> dict[str, str]:
        # Results carry timestamps as JSON text: UTC keeps them exact and unambiguous.
        return {"timezone": "UTC", "application_name": f"rustqueue:{self.schema}"[:63]}

    async def _connect_raw(self) -> Any:
        engine = self.engine
        kwargs = asyncpg_connect_kwargs(engine.dialect, engine.url)
        kwargs.setdefault("server_settings", {}).update(self._server_settings())
        return await asyncpg.connect(
            timeout=self.options.connect_timeout, statement_cache_size=self.options.statement_cache_size, **kwargs
        )

    async def _prepare_hot(self, conn: Any) -> None:
        """Prepare the hot statements on a new pool connection: each runs once, doing nothing, so
        parsing, type lookups and the first plan happen here rather than in the first claim."""
        if self.options.statement_cache_size > 0:
            epoch = datetime(2000, 1, 1, tzinfo=UTC)
            await conn.fetch(self.sql.claim_for(1), "", epoch, None, b"", 1, None)
            await conn.fetch(self.sql.complete_plain, [], [], epoch)
            await conn.fetch(self.sql.insert, "[]", None, *self._notify_args)

    async def _connect_pooled(self) -> Any:
        conn = await self._connect_raw()
        try:
            await self._prepare_hot(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def open(self) -> None:
        if self._engine is not None:
            return
        opts = self.options
        engine = create_async_engine(
            opts.sqlalchemy_url,
            pool_size=opts.pool_size,
            max_overflow=opts.max_overflow,
            pool_recycle=1800,
            connect_args={
                "server_settings": self._server_settings(),
                "timeout": opts.connect_timeout,
                "statement_cache_size": opts.statement_cache_size,
                "prepared_statement_cache_size": opts.statement_cache_size,
            },
        )
        self._engine = engine
        try:
            conn = await self._connect_raw()
            try:
                await migrate(conn, self.schema)
                await self._prepare_hot(conn)
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.close()
                raise
        except Exception as exc:
            self._engine = None
            await engine.dispose()
            described = describe_open_error(exc, opts.display, self._user)
            if described is not None:
                raise described from exc
            raise
        self._cache.clear()
        self._pool = ConnectionPool(self._connect_pooled, size=opts.pool_size, overflow=opts.max_overflow)
        self._pool.adopt(conn)  # the migrating connection is the pool's first
        self._wakeups = Wakeups(self._connect_raw, self.channel, poll_interval=opts.poll_interval, enabled=opts.notify)
        await self._wakeups.start()

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is None:
            return
        if self._wakeups is not None:
            await self._wakeups.close()
            self._wakeups = None
        await self.release_leader()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._cache.clear()
        await engine.dispose()

    # ------------------------------------------------------------------ connections
    async def _once(self, work: Callable[[Any], Awaitable[T]], atomic: bool) -> T:
        """``work(connection)`` on a pooled asyncpg connection, inside a transaction when ``atomic``.
        Without ``atomic`` every statement commits on its own: right for work that is a single
        statement, and it saves the BEGIN and COMMIT round trips. Broken connections leave the pool."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("postgres storage is not open")
        conn = await pool.acquire()
        discard = True  # also when cancelled: the connection may be mid-statement
        try:
            if atomic:
                async with conn.transaction():
                    result = await work(conn)
            else:
                result = await work(conn)
            discard = False
            return result
        except Exception as exc:
            discard = conn.is_closed() or is_retryable(exc)
            raise
        finally:
            pool.release(conn, discard=discard)

    async def _run(self, work: Callable[[Any], Awaitable[T]], *, atomic: bool = True) -> T:
        """Run ``work(connection)`` in one transaction (``atomic=False``: work that is one statement,
        or reads after one), retrying a lost connection with backoff."""
        deadline = time.monotonic() + self.options.retry_timeout
        delay = 0.05
        while True:
            try:
                return await self._once(work, atomic)
            except Exception as exc:
                if has_nul_error(exc):
                    raise NulCharacter() from exc
                if not is_retryable(exc) or time.monotonic() + delay > deadline:
                    if is_retryable(exc):
                        raise StorageUnavailable(
                            f"PostgreSQL at {self.options.display} unreachable for "
                            f"{self.options.retry_timeout:g} s: {exc}"
                        ) from exc
                    raise
                logger.warning("postgres operation failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # ------------------------------------------------------------------ insert
    @staticmethod
    def _check_batch_unique(jobs: Sequence[Job]) -> None:
        seen: dict[tuple[str, str], str] = {}
        for index, job in enumerate(jobs):
            if job.unique_key is None or job.state not in UNFINISHED_STATES:
                continue
            key = (job.queue, job.unique_key)
            holder = seen.get(key)
            if holder is not None:
                raise InsertConflict(index, job.unique_key, holder)
            seen[key] = job.id

    async def _insert(
        self,
        fetchrow: Callable[..., Awaitable[Any]],
        fetch: Callable[..., Awaitable[Any]],
        jobs: Sequence[Job],
        *,
        skip_held: bool,
        json_as_text: bool = False,
        cached: bool = True,
    ) -> list[tuple[int, str | None]]:
        """Insert ``jobs`` with one statement. Returns the skipped (index, holder) pairs when
        ``skip_held``; otherwise raises :class:`InsertConflict` for the first held key.
        ``json_as_text`` passes JSON payloads pre-encoded, so they may contain ``\\u0000``.
        ``cached``: the rows enter the row cache (only for inserts that commit when the call returns)."""
        writer = self._writer if cached else None
        if json_as_text:
            rows = msgspec.to_builtins(jobs)
            for row_dict in rows:
                for column in JSON_COLUMNS:
                    row_dict[column] = _encode(row_dict[column]).decode()
            row = await fetchrow(self.sql.insert_json_as_text, _encode(rows).decode(), writer, *self._notify_args)
        else:
            row = await fetchrow(self.sql.insert, _encode(jobs).decode(), writer, *self._notify_args)
        ids = row[0] or ()
        if cached:
            self._remember_inserted(jobs, ids)
        if len(ids) == len(jobs):
            return []
        inserted = set(ids)
        missing = [(i, j) for i, j in enumerate(jobs) if j.id not in inserted]
        held = missing
        if not inserted:
            # Every id already stored means an earlier attempt of this same call committed before
            # its connection was lost (batches are all or nothing): the insert has happened.
            present = {r[0] for r in await fetch(self.sql.existing_ids, [j.id for _, j in missing])}
            held = [(i, j) for i, j in missing if j.id not in present]
            if not held:
                return []
        keyed = [(i, j) for i, j in held if j.unique_key is not None]
        holders: dict[tuple[str, str], str] = {}
        if keyed:
            rows = await fetch(self.sql.unique_holders, [j.queue for _, j in keyed], [j.unique_key for _, j in keyed])
            holders = {(r[0], r[1]): r[2] for r in rows}
        skipped: list[tuple[int, str | None]] = []
        for index, job in held:
            holder = holders.get((job.queue, job.unique_key)) if job.unique_key is not None else job.id
            if not skip_held:
                raise InsertConflict(index, job.unique_key or "", holder)
            skipped.append((index, holder))
        return skipped

    def _remember_inserted(self, jobs: Sequence[Job], ids: Sequence[str]) -> None:
        """Cache the claimable jobs among ``jobs`` whose ids the insert returned (rev 0)."""
        put = self._cache.put
        if len(ids) == len(jobs):
            for job in jobs:
                if job.state == "waiting" or job.state == "delayed":
                    put(job.id, 0, copy_job(job))
            return
        inserted = set(ids)
        for job in jobs:
            if job.id in inserted and (job.state == "waiting" or job.state == "delayed"):
                put(job.id, 0, copy_job(job))

    async def insert_jobs(
        self, jobs: Sequence[Job], now: datetime, *, connection: AsyncConnection | None = None
    ) -> None:
        """Insert all or nothing. With ``connection`` (a SQLAlchemy ``AsyncConnection`` of the same
        database, inside the caller's transaction) the jobs commit or roll back with the caller's work."""
        if not jobs:
            return
        self._check_batch_unique(jobs)
        if connection is not None:
            await self._insert_external(connection, jobs)
            return

        async def work(raw: Any) -> None:
            await self._insert(raw.fetchrow, raw.fetch, jobs, skip_held=False)

        async def work_json_as_text(raw: Any) -> None:
            await self._insert(raw.fetchrow, raw.fetch, jobs, skip_held=False, json_as_text=True)

        # Without unique keys the one INSERT statement is all or nothing by itself.
        atomic = any(job.unique_key is not None for job in jobs)
        try:
            await self._run(work, atomic=atomic)
        except NulCharacter:
            # Rare: a payload holds \u0000, which the fast path cannot unescape. Nothing was written.
            await self._run(work_json_as_text, atomic=atomic)

    async def _insert_external(self, connection: AsyncConnection, jobs: Sequence[Job]) -> None:
        async def fetch(sql: str, *args: Any) -> list[Any]:
            result = await connection.exec_driver_sql(sql, args)
            return list(result.fetchall())

        async def fetchrow(sql: str, *args: Any) -> Any:
            return (await fetch(sql, *args))[0]

        if any(j.unique_key is not None for j in jobs):
            # A savepoint keeps "all or nothing" inside the caller's transaction on a held key.
            async with connection.begin_nested():
                await self._insert(fetchrow, fetch, jobs, skip_held=False, json_as_text=True, cached=False)
        else:
            await self._insert(fetchrow, fetch, jobs, skip_held=False, json_as_text=True, cached=False)

    # ------------------------------------------------------------------ optional capabilities
    async def wait(self, queues: Sequence[str], timeout: float) -> bool:
        """Wait for a NOTIFY about one of ``queues`` (polling while the listener is down)."""
        wakeups = self._wakeups
        if wakeups is None:
            await asyncio.sleep(min(timeout, self.options.poll_interval))
            return False
        return await wakeups.wait(queues, timeout)

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (notify on)."""
        return self._wakeups is not None and self._wakeups.listening

    async def try_acquire_leader(self) -> bool:
        """Become the scheduler leader of this schema if nobody else is (``pg_try_advisory_lock`` on a
        dedicated session). Call it on every tick: True while this instance holds the lock; after a
        lost connection the lock is gone and the next call competes again. Schedules stay correct
        without it (``fire_schedule`` is a compare-and-set); the leader only saves the others' scans."""
        conn = self._leader
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5.0)
                return True
            except Exception:
                await self.release_leader()
        try:
            conn = await self._connect_raw()
        except Exception as exc:
            logger.warning("postgres leader election: cannot connect (%s)", exc)
            return False
        try:
            won = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"rustqueue:leader:{self.schema}")
            )
        except Exception:
            won = False
        if won:
            self._leader = conn
            return True
        with contextlib.suppress(Exception):
            await conn.close()
        return False

    async def release_leader(self) -> None:
        conn, self._leader = self._leader, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2.0)  # ends the session and its lock
