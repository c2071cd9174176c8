"""Lease operations: release, heartbeat, renew, progress, and cancel (SEMANTICS §2.5, §2.7, §2.8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from rustqueue_core.delivery import ACTIVE, ACTIVE_T, DeliveryMixin, credential_mismatch
from rustqueue_core.engine_base import LEASE_CLEARED
from rustqueue_core.errors import InvalidState, JobNotFound, LeaseLost, RustQueueError, ValidationError
from rustqueue_core.flows import with_logs
from rustqueue_core.models import BatchResult, ItemResult, Job, JobEvent
from rustqueue_core.storage import OK, Change
from rustqueue_core.validation import check_error_text

_CANCELLABLE = frozenset({"waiting", "delayed", "blocked"})
_CANCELLABLE_T = ("waiting", "delayed", "blocked")


class LeaseMixin(DeliveryMixin):
    # ------------------------------------------------------------------ release, heartbeat, renew, progress
    @staticmethod
    def _lease_items(
        ids: str | Sequence[str | Mapping[str, Any]], token: str | None, consumer_id: str | None
    ) -> list[tuple[str, str | None, str | None]]:
        if isinstance(ids, str):
            return [(ids, token, consumer_id)]
        items: list[tuple[str, str | None, str | None]] = []
        for entry in ids:
            if isinstance(entry, Mapping):
                items.append(
                    (
                        str(entry.get("id")),
                        entry.get("token") or entry.get("lease_token") or token,
                        entry.get("consumer_id") or consumer_id,
                    )
                )
            else:
                items.append((entry, token, consumer_id))
        return items

    def _batch_result(self, outcomes: Sequence[tuple[str, RustQueueError | None]]) -> BatchResult:
        results = [
            ItemResult(id=i, ok=True)
            if e is None
            else ItemResult(id=i, ok=False, error_code=e.code, error_message=e.message)
            for i, e in outcomes
        ]
        ok = sum(1 for r in results if r.ok)
        return BatchResult(ok=ok, failed=len(results) - ok, results=results)

    async def release(
        self, ids: str | Sequence[str], *, token: str | None = None, consumer_id: str | None = None
    ) -> BatchResult:
        self._gate_mutation()
        items = self._lease_items(ids, token, consumer_id)
        now = self.clock.now()
        changes = [
            Change(
                id=i,
                expected=ACTIVE,
                updates={"state": "waiting", **LEASE_CLEARED},
                lease_token=t,
                consumer_id=c,
            )
            for i, t, c in items
        ]
        outcomes = await self.storage.transition(changes, now) if changes else []
        results: list[tuple[str, RustQueueError | None]] = []
        events: list[JobEvent] = []
        woken: set[str] = set()
        for (job_id, t, c), outcome in zip(items, outcomes, strict=True):
            if outcome.outcome == OK and outcome.job is not None:
                results.append((job_id, None))
                woken.add(outcome.job.queue)
                events.append(
                    self._event(
                        "job.released",
                        job_id,
                        outcome.job.queue,
                        now,
                        state="waiting",
                        attempt=outcome.job.attempt,
                    )
                )
            else:
                results.append(
                    (
                        job_id,
                        self._outcome_error(job_id, outcome.outcome, ACTIVE_T, t is not None or c is not None),
                    )
                )
        self._wake(woken)
        self._emit(events)
        if isinstance(ids, str) and results[0][1] is not None:
            raise results[0][1]
        return self._batch_result(results)

    async def _extend(
        self,
        items: list[tuple[str, str | None, str | None]],
        lease_ms: int | None,
        now: datetime,
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> list[tuple[str, Job | None, RustQueueError | None]]:
        jobs = await self.storage.get_jobs([i for i, _, _ in items])
        changes: list[Change] = []
        results: list[tuple[str, Job | None, RustQueueError | None]] = []
        pending: list[int] = []
        for position, ((job_id, t, c), job) in enumerate(zip(items, jobs, strict=True)):
            if job is None:
                results.append((job_id, None, JobNotFound(job_id)))
                continue
            if job.state != "active":
                results.append(
                    (
                        job_id,
                        None,
                        self._outcome_error(job_id, f"state:{job.state}", ACTIVE_T, t is not None or c is not None),
                    )
                )
                continue
            if credential_mismatch(job, t, c):
                results.append((job_id, None, LeaseLost(job_id)))
                continue
            span = lease_ms or job.lease_ms or self.settings.stall_timeout_ms
            updates: dict[str, Any] = {
                "last_heartbeat": now,
                "lease_expires_at": now + timedelta(milliseconds=span),
            }
            if extra and job_id in extra:
                updates.update(extra[job_id])
            changes.append(Change(id=job_id, expected=ACTIVE, updates=updates, lease_token=job.lease_token))
            results.append((job_id, None, None))
            pending.append(position)
        if changes:
            outcomes = await self.storage.transition(changes, now)
            for position, outcome in zip(pending, outcomes, strict=True):
                job_id = results[position][0]
                if outcome.outcome == OK:
                    results[position] = (job_id, outcome.job, None)
                else:
                    results[position] = (
                        job_id,
                        None,
                        self._outcome_error(job_id, outcome.outcome, ACTIVE_T, True),
                    )
        return results

    async def heartbeat(
        self, ids: str | Sequence[str], *, token: str | None = None, consumer_id: str | None = None
    ) -> BatchResult:
        """One batched call; tokens for many ids are given as ``{"id", "token"}`` mappings."""
        self._gate_mutation()
        items = self._lease_items(ids, token, consumer_id)
        results = await self._extend(items, None, self.clock.now())
        if isinstance(ids, str) and results[0][2] is not None:
            raise results[0][2]
        return self._batch_result([(i, e) for i, _, e in results])

    async def renew(
        self,
        job_id: str,
        lease_ms: int | None = None,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
    ) -> Job:
        if lease_ms is not None and (isinstance(lease_ms, bool) or not isinstance(lease_ms, int) or lease_ms <= 0):
            raise ValidationError("lease_ms must be a positive integer")
        self._gate_mutation()
        _, job, error = (await self._extend([(job_id, token, consumer_id)], lease_ms, self.clock.now()))[0]
        if error is not None:
            raise error
        assert job is not None
        return job

    async def progress(
        self,
        job_id: str,
        value: int,
        message: str | None = None,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
    ) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Progress must be an integer")
        if value < 0:
            raise ValidationError("Progress must not be negative")
        if message is not None:
            check_error_text(message, "Progress message")
        self._gate_mutation()
        now = self.clock.now()
        job = await self._read_active(job_id, token, consumer_id)
        extra: dict[str, Any] = {"progress": min(value, 100)}
        if message is not None:
            extra["logs"] = with_logs(job, now, [message])
        _, updated, error = (await self._extend([(job_id, token, consumer_id)], None, now, {job_id: extra}))[0]
        if error is not None:
            raise error
        assert updated is not None
        self._emit([self._event("job.progress", job_id, updated.queue, now, state="active", attempt=updated.attempt)])

    # ------------------------------------------------------------------ cancel
    async def cancel(self, job_id: str) -> None:
        self._gate_mutation()
        job = (await self.storage.get_jobs([job_id]))[0]
        if job is None:
            raise JobNotFound(job_id)
        if job.state not in _CANCELLABLE:
            raise InvalidState(job.state, _CANCELLABLE_T, job_id)
        now = self.clock.now()
        outcome = (
            await self.storage.transition(
                [Change(id=job_id, expected=_CANCELLABLE, updates={"state": "cancelled", "delay_until": None})],
                now,
            )
        )[0]
        if outcome.outcome != OK or outcome.job is None:
            raise self._outcome_error(job_id, outcome.outcome, _CANCELLABLE_T, False)
        events = [self._event("job.cancelled", job_id, job.queue, now, state="cancelled")]
        events.extend(await self._cascade([job_id], "cancelled", now))
        self._emit(events)
