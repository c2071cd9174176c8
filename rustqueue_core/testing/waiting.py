"""Waiting in tests for something the engine does in the background, with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 5.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it returns true; ``AssertionError`` once ``within`` seconds passed."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within:g} s")
        await asyncio.sleep(interval)


async def state_of(rq: Any, job_id: str) -> str:
    """The current state of job ``job_id`` (which must exist)."""
    job = await rq.get_job(job_id)
    assert job is not None, f"job {job_id} not found"
    return str(job.state)


async def has_left(rq: Any, job_id: str, state: str = "active") -> bool:
    """True once job ``job_id`` is no longer in ``state`` (a predicate for :func:`wait_until`)."""
    return await state_of(rq, job_id) != state
