"""Run ``storage_child`` subprocesses for multi-process and crash tests; every wait has a timeout."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from rustqueue_core.storage import Storage
from rustqueue_core.testing.resolve import resolve_storage_spec

CHILD_MODULE = "rustqueue_core.testing.storage_child"


class Child:
    """One child process; ``lines`` collects its stdout lines."""

    def __init__(self, url: str, mode: str, *args: str, pace: float = 0.0) -> None:
        self.argv = [sys.executable, "-m", CHILD_MODULE, url, mode, *args]
        self.env = {**os.environ, "RUSTQUEUE_CHILD_PACE": str(pace)}
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.stderr = ""

    async def start(self, ready_within_s: float = 30.0) -> Child:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env
        )
        first = await self._readline(ready_within_s)
        if first != "ready":
            await self._collect_stderr()
            raise AssertionError(f"child did not start: {first!r}\n{self.stderr}")
        return self

    async def _readline(self, within_s: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), within_s)
        return raw.decode().rstrip("\n") if raw else None

    async def read_until(self, done: Callable[[list[str]], bool], within_s: float) -> None:
        """Collect lines until ``done(lines)`` or ``within_s`` seconds (then return quietly)."""
        deadline = time.monotonic() + within_s
        while not done(self.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                line = await self._readline(remaining)
            except TimeoutError:
                return
            if line is None:
                return
            self.lines.append(line)

    def kill(self) -> float:
        """SIGKILL now; returns the wall-clock time of the kill."""
        assert self.proc is not None
        killed_at = time.time()
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it already died: ``finish()`` reports how
        return killed_at

    async def finish(self, within_s: float = 60.0) -> int:
        """Read the rest of stdout (lines written before a kill were acknowledged too) and reap."""
        assert self.proc is not None
        await self.read_until(lambda _: False, within_s)
        code = await asyncio.wait_for(self.proc.wait(), within_s)
        await self._collect_stderr()
        return code

    async def _collect_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            self.stderr = (await asyncio.wait_for(self.proc.stderr.read(), 5.0)).decode(errors="replace")
        except TimeoutError:
            pass

    def words(self, kind: str) -> list[list[str]]:
        return [line.split()[1:] for line in self.lines if line.split()[:1] == [kind]]


async def open_url(url: str) -> Storage:
    storage = resolve_storage_spec(url).factory(url, {})
    await storage.open()
    return storage


async def storage_for(url: str, body: Callable[[Storage], Any]) -> Any:
    storage = await open_url(url)
    try:
        return await body(storage)
    finally:
        await storage.close()
