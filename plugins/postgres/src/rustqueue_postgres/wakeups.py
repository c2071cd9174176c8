"""Cross-process wake-ups: LISTEN on a dedicated connection, with polling whenever it is not up.

Inserts, promotions, releases and renames send ``pg_notify(channel, queue)`` inside their own
transaction, so a notification arrives only after the job is committed and claimable. NOTIFY is only
a hint: a waiter that is woken re-claims, and a waiter never depends on a notification to make
progress, because while the listener is down (or with ``notify=off``) ``wait`` returns every
``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

logger = logging.getLogger("rustqueue.postgres")

_ANY = "\x00any"


class Wakeups:
    """Waiters keyed by queue name, woken by notifications on ``channel``."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        channel: str,
        *,
        poll_interval: float,
        enabled: bool,
    ) -> None:
        self._connect = connect
        self.channel = channel
        self.poll_interval = poll_interval
        self.enabled = enabled
        self._waiters: dict[str, set[asyncio.Future[bool]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._up = False
        self._closed = False
        #: Notifications received (for tests and diagnostics).
        self.received = 0

    @property
    def listening(self) -> bool:
        return self._up

    async def start(self) -> None:
        if not self.enabled or self._task is not None:
            return
        self._closed = False
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready), name=f"postgres-listener:{self.channel}")
        # The first connection is made before open() returns, so a push right after open wakes us.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=10.0)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._wake_all()

    async def _run(self, ready: asyncio.Event) -> None:
        delay = 0.05
        while not self._closed:
            conn: Any = None
            try:
                conn = await self._connect()
                lost = self._lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._on_notify)
                self._up = True
                delay = 0.05
                ready.set()
                # Anything committed while we were not listening is found by the next claim.
                self._wake_all()
                while not lost.is_set():
                    # asyncpg reports a dead socket only when it is used: probe now and then.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=5.0)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._closed:
                    logger.warning("postgres listener connection lost (%s); polling until it is back", exc)
            finally:
                self._up = False
                ready.set()
                self._wake_all()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2.0)
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.received += 1
        for key in (payload, _ANY):
            waiters = self._waiters.get(key)
            if waiters:
                for future in waiters:
                    if not future.done():
                        future.set_result(True)

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(True)

    async def wait(self, queues: Sequence[str], timeout: float) -> bool:
        """True when a job may have become claimable in one of ``queues`` (any queue if empty),
        False when ``timeout`` seconds passed without a sign."""
        if timeout <= 0:
            return False
        if not self._up:
            # Poll mode: a claim attempt every poll_interval is the wake-up.
            step = min(timeout, self.poll_interval)
            await asyncio.sleep(step)
            return step < timeout
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        keys = list(queues) or [_ANY]
        for key in keys:
            self._waiters.setdefault(key, set()).add(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[key]


def channel_name(schema: str) -> str:
    """One channel per schema, so deployments (and tests) sharing a database never wake each other."""
    return f"rustqueue_{schema}"[:63]
