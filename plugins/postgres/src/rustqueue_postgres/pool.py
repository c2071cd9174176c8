"""The asyncpg connections the storage runs its own statements on.

A small LIFO pool: taking an idle connection is a list pop (no greenlet hop, no reset round trip),
which matters when every claim and ack is one short statement. SQLAlchemy's engine stays the pool
applications share (``PostgresStorage.engine``, transactional pushes); this one serves the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg


class ConnectionPool:
    """At most ``size + overflow`` open connections; up to ``size`` of them are kept idle between
    operations, the rest close when given back. Connections older than ``recycle`` seconds, closed by
    the server, or given back broken or inside a transaction are discarded."""

    def __init__(
        self, connect: Callable[[], Awaitable[Any]], *, size: int, overflow: int, recycle: float = 1800.0
    ) -> None:
        self._connect = connect
        self._size = size
        self._limit = size + overflow
        self._recycle = recycle
        self._idle: list[Any] = []
        self._born: dict[Any, float] = {}
        self._open = 0  # idle, in use, or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def adopt(self, conn: Any) -> None:
        """Add an open connection made elsewhere (counted against the limit) as an idle one."""
        self._open += 1
        self._born[conn] = time.monotonic()
        self.release(conn)

    async def acquire(self) -> Any:
        while True:
            if self._closed:
                raise asyncpg.exceptions.InterfaceError("connection pool is closed")
            idle = self._idle
            while idle:
                conn = idle.pop()
                if conn.is_closed() or time.monotonic() - self._born.get(conn, 0.0) > self._recycle:
                    self._drop(conn)
                    continue
                return conn
            if self._open < self._limit:
                self._open += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
                self._born[conn] = time.monotonic()
                return conn
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken and cancelled at once: pass the turn on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise

    def release(self, conn: Any, *, discard: bool = False) -> None:
        """Give ``conn`` back; ``discard`` (or a broken, busy or closed pool) closes it instead."""
        if discard or self._closed or conn.is_closed() or conn.is_in_transaction():
            self._drop(conn, terminate=True)
        elif len(self._idle) >= self._size:
            self._drop(conn)
        else:
            self._idle.append(conn)
        self._wake()

    def _drop(self, conn: Any, *, terminate: bool = False) -> None:
        self._open -= 1
        self._born.pop(conn, None)
        if conn.is_closed():
            return
        if terminate:
            conn.terminate()
            return
        task = asyncio.ensure_future(self._close_quietly(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_quietly(conn: Any) -> None:
        try:
            await asyncio.wait_for(conn.close(), timeout=2.0)
        except BaseException:
            conn.terminate()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            self._born.pop(conn, None)
            await self._close_quietly(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # wakes to find the pool closed
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
