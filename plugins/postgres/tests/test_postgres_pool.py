"""The backend's connection pool, with stand-in connections: limits, waiting, reuse and discards."""

from __future__ import annotations

import asyncio

import pytest
from rustqueue_postgres.pool import ConnectionPool


class FakeConnection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.in_transaction = False

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def terminate(self) -> None:
        self.closed = True

    async def close(self) -> None:
        self.closed = True


def pool_of(size: int, overflow: int) -> tuple[ConnectionPool, list[FakeConnection]]:
    made: list[FakeConnection] = []

    async def connect() -> FakeConnection:
        made.append(FakeConnection(len(made)))
        return made[-1]

    return ConnectionPool(connect, size=size, overflow=overflow), made


async def test_idle_connections_are_reused_last_in_first_out() -> None:
    pool, made = pool_of(2, 0)
    first, second = await pool.acquire(), await pool.acquire()
    pool.release(first)
    pool.release(second)
    assert await pool.acquire() is second
    assert await pool.acquire() is first
    assert len(made) == 2


async def test_waiters_get_connections_given_back_and_overflow_closes() -> None:
    pool, made = pool_of(1, 1)
    held = [await pool.acquire(), await pool.acquire()]
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    pool.release(held[0])
    assert await asyncio.wait_for(waiter, 1) is held[0]
    pool.release(held[0])
    pool.release(held[1])  # beyond the pool size: closed, not kept
    await asyncio.sleep(0.01)
    assert held[1].closed and not held[0].closed
    assert len(made) == 2


async def test_broken_busy_and_discarded_connections_are_replaced() -> None:
    pool, made = pool_of(3, 0)
    a, b, c = await pool.acquire(), await pool.acquire(), await pool.acquire()
    b.in_transaction = True
    pool.release(a, discard=True)
    pool.release(b)
    c.closed = True
    pool.release(c)
    assert a.closed and b.closed
    fresh = await pool.acquire()
    assert fresh not in (a, b, c) and len(made) == 4


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    pool, _ = pool_of(1, 0)
    held = await pool.acquire()
    first = asyncio.ensure_future(pool.acquire())
    second = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    first.cancel()
    pool.release(held)
    assert await asyncio.wait_for(second, 1) is held


async def test_closed_pool_refuses_and_closes_what_comes_back() -> None:
    pool, _ = pool_of(2, 0)
    kept, out = await pool.acquire(), await pool.acquire()
    pool.release(kept)
    await pool.close()
    assert kept.closed
    pool.release(out)
    assert out.closed
    with pytest.raises(Exception, match="closed"):
        await pool.acquire()
