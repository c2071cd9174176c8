"""``StorageCrashConformance``: kill -9 in the middle of work, reopen, check (checklist lines marked K).

A child process works on the store and prints every acknowledged operation; the test SIGKILLs it
mid-work, reopens the store and checks: no acknowledged push missing, no acknowledged ack undone
(a completed job is never claimable again), every batch wholly present or absent, and every
group-committed concurrent push present. Backends that declare ``write_back`` are checked against
their ``loss_window_ms`` instead: only operations acknowledged before the window must survive.
Backends that are neither ``durable`` nor ``write_back`` skip with that reason.

Needs ``storage_factory`` and ``storage_url_for_subprocess`` (a fresh store another process can open).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rustqueue_core.models import Capabilities
from rustqueue_core.storage import JobFilter
from rustqueue_core.testing.procs import Child, open_url

#: Slack added to a write-back loss window (scheduling jitter of flush and kill).
WINDOW_SLACK_S = 0.75


def _required(entries: list[tuple[str, float]], caps: Capabilities, killed_at: float) -> list[str]:
    """Acknowledged ids that must have survived the kill."""
    if caps.durable:
        return [key for key, _ in entries]
    cutoff = killed_at - caps.loss_window_ms / 1000 - WINDOW_SLACK_S
    return [key for key, stamp in entries if stamp < cutoff]


class StorageCrashConformance:
    """Crash-consistency contract. Needs ``storage_factory`` and ``storage_url_for_subprocess``."""

    pytestmark = [pytest.mark.asyncio]

    async def _prepare(self, storage_factory: Any, request: pytest.FixtureRequest) -> tuple[str, Capabilities]:
        probe = await storage_factory()
        caps: Capabilities = probe.capabilities
        if not (caps.durable or caps.write_back):
            pytest.skip("backend declares neither durable nor write_back: a crash may lose anything")
        try:
            url = request.getfixturevalue("storage_url_for_subprocess")
        except pytest.FixtureLookupError:
            url = None
        if not url:
            pytest.skip("no storage_url_for_subprocess fixture: crash tests need a store a subprocess can open")
        return str(url), caps

    @staticmethod
    def _pace(caps: Capabilities) -> float:
        """A write-back run lasts longer than its window: pace it so its output stays small."""
        return 0.0 if caps.durable else 0.002

    def _run_for(self, caps: Capabilities) -> float:
        """Work long enough that a write-back backend has flushed some of it."""
        return 0.6 if caps.durable else caps.loss_window_ms / 1000 + 2 * WINDOW_SLACK_S + 0.5

    async def _kill_after(self, child: Child, kind: str, at_least: int, seconds: float) -> float:
        started = time.monotonic()
        await child.read_until(lambda lines: sum(1 for ln in lines if ln.startswith(kind)) >= at_least, 30)
        remaining = seconds - (time.monotonic() - started)
        if remaining > 0:
            await child.read_until(lambda _: False, remaining)
        killed_at = child.kill()
        code = await child.finish()
        assert code == -signal.SIGKILL, f"the child exited by itself (code {code}) before the kill:\n{child.stderr}"
        return killed_at

    @staticmethod
    def _stamped(child: Child, kind: str) -> list[tuple[str, float]]:
        return [(w[0], float(w[1])) for w in child.words(kind)]

    async def test_acknowledged_pushes_survive_kill(self, storage_factory: Any, request: pytest.FixtureRequest) -> None:
        url, caps = await self._prepare(storage_factory, request)
        child = await Child(url, "push", pace=self._pace(caps)).start()
        killed_at = await self._kill_after(child, "acked", 100, self._run_for(caps))
        required = _required(self._stamped(child, "acked"), caps, killed_at)
        assert required, "nothing was acknowledged before the kill"
        store = await open_url(url)
        try:
            got = await store.get_jobs(required)
            assert [j is not None for j in got].count(False) == 0, "an acknowledged push was lost"
            assert {j.state for j in got if j is not None} == {"waiting"}
            claimable: set[str] = set()
            while batch := await store.claim("crash", 1_000, datetime.now(UTC), consumer_id="check", lease_ms=60_000):
                claimable.update(j.id for j in batch)
            assert set(required) <= claimable
        finally:
            await store.close()

    async def test_batches_are_whole_or_absent_after_kill(
        self, storage_factory: Any, request: pytest.FixtureRequest
    ) -> None:
        url, caps = await self._prepare(storage_factory, request)
        child = await Child(url, "batch", "50", pace=self._pace(caps)).start()
        killed_at = await self._kill_after(child, "batch", 10, self._run_for(caps))
        required = _required(self._stamped(child, "batch"), caps, killed_at)
        assert required, "no batch was acknowledged early enough to be checked"
        store = await open_url(url)
        try:
            jobs: list[Any] = []
            cursor = None
            while True:
                page, cursor = await store.find_jobs(JobFilter(queue="crash"), 5_000, cursor)
                jobs.extend(page)
                if cursor is None:
                    break
            sizes = Counter(j.flow_id for j in jobs)
            assert all(n == 50 for n in sizes.values()), f"a partial batch survived: {sizes}"
            assert set(required) <= set(sizes), "an acknowledged batch was lost"
        finally:
            await store.close()

    async def test_group_committed_concurrent_pushes_survive_kill(
        self, storage_factory: Any, request: pytest.FixtureRequest
    ) -> None:
        url, caps = await self._prepare(storage_factory, request)
        child = await Child(url, "concurrent", "100", pace=self._pace(caps)).start()
        killed_at = await self._kill_after(child, "acked", 300, self._run_for(caps))
        required = _required(self._stamped(child, "acked"), caps, killed_at)
        assert required or not caps.durable
        store = await open_url(url)
        try:
            got = await store.get_jobs(required)
            assert sum(1 for j in got if j is None) == 0, "a group-committed push was lost"
        finally:
            await store.close()

    async def test_kill_under_push_claim_ack_load(self, storage_factory: Any, request: pytest.FixtureRequest) -> None:
        url, caps = await self._prepare(storage_factory, request)
        child = await Child(url, "work", pace=self._pace(caps)).start()
        killed_at = await self._kill_after(child, "acked", 300, self._run_for(caps))
        pushed = _required(self._stamped(child, "pushed"), caps, killed_at)
        acked = _required(self._stamped(child, "acked"), caps, killed_at)
        assert pushed and acked, "nothing was acknowledged early enough to be checked"
        store = await open_url(url)
        try:
            got = await store.get_jobs(pushed)
            assert sum(1 for j in got if j is None) == 0, "an acknowledged push was lost"
            done = await store.get_jobs(acked)
            assert all(j is not None and j.state == "completed" for j in done), "an acknowledged ack was lost"
            now = datetime.now(UTC)
            claimable: set[str] = set()
            while batch := await store.claim("crash", 1_000, now, consumer_id="check", lease_ms=60_000):
                claimable.update(j.id for j in batch)
            assert not claimable & set(acked), "a completed job was claimable again"
            # jobs active at the kill are recoverable once their lease runs out
            later = now + timedelta(minutes=30)
            stale, _ = await store.find_jobs(JobFilter(states=["active"], lease_expires_before=later), 100_000)
            active, _ = await store.find_jobs(JobFilter(states=["active"]), 100_000)
            assert {j.id for j in stale} == {j.id for j in active}
        finally:
            await store.close()
