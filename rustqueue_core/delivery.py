"""Delivery operations: claim, ack, fail, nack, release, heartbeat, renew, progress, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from rustqueue_core.engine_base import LEASE_CLEARED
from rustqueue_core.errors import (
    Closed,
    JobNotFound,
    LeaseLost,
    NotReady,
    RustQueueError,
    ValidationError,
)
from rustqueue_core.flows import FlowMixin, Spawn
from rustqueue_core.models import (
    BatchResult,
    FailResult,
    ItemResult,
    Job,
    JobEvent,
    NackBatchResult,
)
from rustqueue_core.storage import OK, Change, CompleteItem, CompleteOutcome
from rustqueue_core.validation import check_error_text, check_result

ACTIVE = frozenset({"active"})
ACTIVE_T = ("active",)
_CANCELLABLE = frozenset({"waiting", "delayed", "blocked"})
_CANCELLABLE_T = ("waiting", "delayed", "blocked")
_WAIT_SLICE = 1.0


def backoff_delay_ms(job: Job, attempt: int, max_backoff_ms: int) -> int:
    """SEMANTICS §1.3 with exact integers, clamped to ``max_backoff_ms``."""
    base = job.backoff_delay_ms
    if job.backoff == "fixed":
        delay = base
    elif job.backoff == "linear":
        delay = base * attempt
    else:
        delay = base << min(attempt - 1, 64)
    return min(delay, max_backoff_ms)


def credential_mismatch(job: Job, token: str | None, consumer_id: str | None) -> bool:
    return (token is not None and job.lease_token != token) or (
        consumer_id is not None and job.worker_id != consumer_id
    )


class FailSpec:
    """One failure to apply: the job as read, and how it failed."""

    __slots__ = ("dead", "error", "job", "no_backoff", "retry_delay_ms")

    def __init__(
        self,
        job: Job,
        error: str,
        *,
        retry_delay_ms: int | None = None,
        dead: bool = False,
        no_backoff: bool = False,
    ) -> None:
        self.job = job
        self.error = error
        self.retry_delay_ms = retry_delay_ms
        self.dead = dead
        self.no_backoff = no_backoff


class DeliveryMixin(FlowMixin):
    # ------------------------------------------------------------------ claim
    async def claim(
        self,
        queue: str,
        n: int = 1,
        *,
        consumer_id: str | None = None,
        lease_ms: int | None = None,
        wait: float | None = None,
    ) -> list[Job]:
        state = self.state
        if state != "ready":
            if state == "starting":
                raise NotReady()
            if state == "closed":
                raise Closed()
            return []
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValidationError("claim count must be an integer")
        if n <= 0:
            if n == 0:
                return []
            raise ValidationError("claim count must not be negative")
        if lease_ms is not None and (isinstance(lease_ms, bool) or not isinstance(lease_ms, int) or lease_ms <= 0):
            raise ValidationError("lease_ms must be a positive integer")
        if not wait or wait <= 0:
            return await self._claim_once(queue, n, consumer_id, lease_ms)
        # the wake-up event exists before each claim, so a push that lands during the claim is never
        # missed, and one empty claim per wait is enough
        event = self._waiter(queue)
        jobs = await self._claim_once(queue, n, consumer_id, lease_ms)
        if jobs:
            return jobs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        storage_wait = getattr(self.storage, "wait", None) if self.capabilities.wakeups else None
        while self.state == "ready":
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if not event.is_set():
                slice_ = min(remaining, _WAIT_SLICE)
                waiters = [asyncio.ensure_future(event.wait())]
                if storage_wait is not None:
                    waiters.append(asyncio.ensure_future(storage_wait([queue], slice_)))
                try:
                    await asyncio.wait(waiters, timeout=slice_, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            event = self._waiter(queue)
            jobs = await self._claim_once(queue, n, consumer_id, lease_ms)
            if jobs:
                return jobs
        return []

    pull = claim

    async def _claim_once(self, queue: str, n: int, consumer_id: str | None, lease_ms: int | None) -> list[Job]:
        config = self._configs.get(queue)
        if config is not None and config.consume_paused:
            return []
        lease = lease_ms or (config.lease_ms if config is not None else None) or self.settings.stall_timeout_ms
        now = self.clock.now()
        jobs = await self.storage.claim(
            queue,
            n,
            now,
            consumer_id=consumer_id,
            lease_ms=lease,
            group_limit=config.group_concurrency if config is not None else None,
        )
        mono = self.clock.monotonic()
        self._last_claim[queue] = mono
        if jobs:
            self._counters.of(queue).claimed += len(jobs)
            for job in jobs:
                if isinstance(job.metadata, dict) and "follow_ups" in job.metadata:
                    self._track_followups(job.id)
            if self._has_consumers:
                self._emit(
                    [self._event("job.claimed", j.id, queue, now, state="active", attempt=j.attempt) for j in jobs]
                )
        return jobs

    # ------------------------------------------------------------------ ack
    async def ack(
        self, job_id: str, result: Any = None, *, token: str | None = None, consumer_id: str | None = None
    ) -> Job:
        self._gate_mutation()
        check_result(result)
        item = CompleteItem(id=job_id, result=result, lease_token=token, consumer_id=consumer_id)
        outcome = (await self._complete([item]))[0]
        if outcome.outcome != OK or outcome.job is None:
            raise self._outcome_error(job_id, outcome.outcome, ACTIVE_T, token is not None or consumer_id is not None)
        return outcome.job

    async def ack_batch(
        self, items: Sequence[tuple[str, Any] | str | Mapping[str, Any]], *, consumer_id: str | None = None
    ) -> BatchResult:
        """Items are ids, ``(id, result)`` pairs or ``{"id", "result"?, "token"?, "consumer_id"?}``.
        ``consumer_id`` is the lock owner every bare id must have (as each mapping's own would be)."""
        self._gate_mutation()
        if all(type(item) is str for item in items):  # the common batch ack: bare ids
            bare = [CompleteItem(id=job_id, consumer_id=consumer_id) for job_id in items]  # type: ignore[arg-type]
            return self._ack_batch_result(await self._complete(bare), consumer_id is not None)
        complete_items: list[CompleteItem] = []
        results: list[ItemResult | None] = []
        for item in items:
            if type(item) is str:
                complete = CompleteItem(id=item, consumer_id=consumer_id)
            elif type(item) is dict or isinstance(item, Mapping):
                complete = CompleteItem(
                    id=str(item.get("id")),
                    result=item.get("result"),
                    lease_token=item.get("token") or item.get("lease_token"),
                    consumer_id=item.get("consumer_id"),
                )
            else:
                complete = CompleteItem(id=item[0], result=item[1])
            try:
                if complete.result is not None:
                    check_result(complete.result)
            except ValidationError as exc:
                results.append(ItemResult(id=complete.id, ok=False, error_code=exc.code, error_message=exc.message))
                continue
            results.append(None)
            complete_items.append(complete)
        outcomes = iter(await self._complete(complete_items)) if complete_items else iter(())
        by_item = iter(complete_items)
        final: list[ItemResult] = []
        for slot in results:
            if slot is not None:
                final.append(slot)
                continue
            outcome = next(outcomes)
            sent = next(by_item)
            if outcome.outcome == OK:
                final.append(ItemResult(id=outcome.id, ok=True))
            else:
                err = self._outcome_error(
                    outcome.id,
                    outcome.outcome,
                    ACTIVE_T,
                    sent.lease_token is not None or sent.consumer_id is not None,
                )
                final.append(ItemResult(id=outcome.id, ok=False, error_code=err.code, error_message=err.message))
        ok = sum(1 for r in final if r.ok)
        return BatchResult(ok=ok, failed=len(final) - ok, results=final)

    def _ack_batch_result(self, outcomes: list[CompleteOutcome], credential_given: bool = False) -> BatchResult:
        """The ``BatchResult`` of acks of bare ids, one outcome per item in order."""
        final: list[ItemResult] = []
        ok = 0
        for outcome in outcomes:
            if outcome.outcome == OK:
                ok += 1
                final.append(ItemResult(id=outcome.id, ok=True))
            else:
                err = self._outcome_error(outcome.id, outcome.outcome, ACTIVE_T, credential_given)
                final.append(ItemResult(id=outcome.id, ok=False, error_code=err.code, error_message=err.message))
        return BatchResult(ok=ok, failed=len(final) - ok, results=final)

    async def _complete(self, items: list[CompleteItem]) -> list[CompleteOutcome]:
        now = self.clock.now()
        spawns: dict[str, Spawn] = {}
        if self._followup_ids:
            wanted = [i.id for i in items if i.id in self._followup_ids]
            if wanted:
                results = {i.id: i.result for i in items}
                for job in await self.storage.get_jobs(wanted):
                    if job is not None and job.state == "active":
                        spawn = await self._prepare_followups(job, results[job.id], now)
                        spawns[job.id] = spawn
                for item in items:
                    spawn_for = spawns.get(item.id)
                    if spawn_for is not None:
                        item.spawned = spawn_for.jobs
        try:
            outcomes = await self.storage.complete(items, now)
        except BaseException:
            for spawn in spawns.values():
                self._refund(spawn.taken)
            raise
        await self._after_complete(outcomes, spawns, now)
        return outcomes

    async def _after_complete(self, outcomes: list[CompleteOutcome], spawns: dict[str, Spawn], now: datetime) -> None:
        events: list[JobEvent] = []
        done: list[Job] = []
        notes: dict[str, list[str]] = {}
        inserted: list[Job] = []
        if not spawns and not self._followup_ids:
            # No follow-ups anywhere in this batch (the common case): only completed jobs to collect,
            # unless one carries follow-ups claimed elsewhere.
            for outcome in outcomes:
                job = outcome.job
                if outcome.outcome == OK and job is not None:
                    if isinstance(job.metadata, dict) and "follow_ups" in job.metadata:
                        done = []
                        break
                    done.append(job)
            else:
                await self._finish_complete(outcomes, done, events, notes, inserted, now)
                return
        for outcome in outcomes:
            spawn = spawns.get(outcome.id)
            if outcome.outcome != OK or outcome.job is None:
                if spawn is not None:
                    self._refund(spawn.taken)
                continue
            job = outcome.job
            done.append(job)
            self._followup_ids.discard(job.id)
            if spawn is not None:
                skipped = dict(outcome.skipped)
                for position, child in enumerate(spawn.jobs):
                    if position in skipped:
                        notes.setdefault(job.id, []).append(
                            f"follow-up {spawn.spec_indexes[position]} to {child.queue} rejected: "
                            f"DUPLICATE_KEY: Duplicate unique key '{child.unique_key}'"
                        )
                    else:
                        inserted.append(child)
                if spawn.notes:
                    notes.setdefault(job.id, []).extend(spawn.notes)
            elif isinstance(job.metadata, dict) and "follow_ups" in job.metadata:
                # Claimed elsewhere (another instance, before a restart): insert the follow-ups now.
                late = await self._prepare_followups(job, job.result, now)
                notes.setdefault(job.id, []).extend(late.notes)
                if late.jobs:
                    try:
                        await self.storage.insert_jobs(late.jobs, now)
                        inserted.extend(late.jobs)
                    except RustQueueError as exc:
                        self._refund(late.taken)
                        notes[job.id].append(f"follow-ups rejected: {exc}")
                    except Exception as exc:
                        self._refund(late.taken)
                        notes[job.id].append(f"follow-ups rejected: {exc}")
        await self._finish_complete(outcomes, done, events, notes, inserted, now)

    async def _finish_complete(
        self,
        outcomes: list[CompleteOutcome],
        done: list[Job],
        events: list[JobEvent],
        notes: dict[str, list[str]],
        inserted: list[Job],
        now: datetime,
    ) -> None:
        if not done:
            return
        mono = self.clock.monotonic()
        per_queue: dict[str, int] = {}
        for job in done:
            per_queue[job.queue] = per_queue.get(job.queue, 0) + 1
        for queue, count in per_queue.items():
            counters = self._counters.of(queue)
            counters.acked += count
            counters.ack_rate.add(count, mono)
        if self._has_consumers:
            events.extend(
                self._event("job.completed", j.id, j.queue, now, state="completed", attempt=j.attempt, job=j)
                for j in done
            )
        if inserted:
            self._after_insert(inserted, now)
        if notes:
            await self._append_logs(notes, now)
        # Unblock children after the commit (SEMANTICS §2.10 rule 4).
        known = [o for o in outcomes if o.outcome == OK]
        if all(o.blocked_children is not None for o in known):
            child_ids = [c for o in known for c in (o.blocked_children or ())]
            unblock_events, still = await self._unblock_children([j.id for j in done], now, child_ids)
        else:
            unblock_events, still = await self._unblock_children([j.id for j in done], now)
        events.extend(unblock_events)
        removable = [j.id for j in done if j.remove_on_complete and j.id not in still]
        if removable:
            deleted = await self.storage.delete_jobs(removable)
            events.extend(self._event("job.deleted", j.id, j.queue, now, state=j.state) for j in deleted)
        if events:
            self._emit(events)

    # ------------------------------------------------------------------ fail, nack
    async def _read_active(self, job_id: str, token: str | None, consumer_id: str | None) -> Job:
        job = (await self.storage.get_jobs([job_id]))[0]
        if job is None:
            raise JobNotFound(job_id)
        if job.state != "active":
            raise self._outcome_error(
                job_id, f"state:{job.state}", ACTIVE_T, token is not None or consumer_id is not None
            )
        if credential_mismatch(job, token, consumer_id):
            raise LeaseLost(job_id)
        return job

    async def fail(
        self,
        job_id: str,
        error: str,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
        retry_delay_ms: int | None = None,
        dead: bool = False,
    ) -> FailResult:
        check_error_text(error)
        if retry_delay_ms is not None and (
            isinstance(retry_delay_ms, bool) or not isinstance(retry_delay_ms, int) or retry_delay_ms < 0
        ):
            raise ValidationError("retry_delay_ms must be a non-negative integer")
        self._gate_mutation()
        job = await self._read_active(job_id, token, consumer_id)
        spec = FailSpec(job, error, retry_delay_ms=retry_delay_ms, dead=dead)
        result = (await self._apply_failures([spec], self.clock.now()))[0]
        if isinstance(result, RustQueueError):
            raise result
        return result

    async def nack(
        self,
        job_id: str,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
        requeue: bool = True,
        reason: str | None = None,
    ) -> FailResult:
        if reason is not None:
            check_error_text(reason, "Nack reason")
        self._gate_mutation()
        job = await self._read_active(job_id, token, consumer_id)
        spec = FailSpec(job, reason or "nacked", dead=not requeue, no_backoff=True)
        result = (await self._apply_failures([spec], self.clock.now(), nack=True))[0]
        if isinstance(result, RustQueueError):
            raise result
        return result

    async def nack_batch(
        self,
        ids: Sequence[str],
        *,
        consumer_id: str | None = None,
        requeue: bool = True,
        reason: str | None = None,
    ) -> NackBatchResult:
        if reason is not None:
            check_error_text(reason, "Nack reason")
        self._gate_mutation()
        jobs = await self.storage.get_jobs(list(ids))
        results: list[ItemResult | None] = []
        specs: list[FailSpec] = []
        for job_id, job in zip(ids, jobs, strict=True):
            err: RustQueueError | None = None
            if job is None:
                err = JobNotFound(job_id)
            elif job.state != "active":
                err = self._outcome_error(job_id, f"state:{job.state}", ACTIVE_T, consumer_id is not None)
            elif credential_mismatch(job, None, consumer_id):
                err = LeaseLost(job_id)
            if err is not None or job is None:
                assert err is not None
                results.append(ItemResult(id=job_id, ok=False, error_code=err.code, error_message=err.message))
                continue
            results.append(None)
            specs.append(FailSpec(job, reason or "nacked", dead=not requeue, no_backoff=True))
        applied = iter(await self._apply_failures(specs, self.clock.now(), nack=True) if specs else [])
        final: list[ItemResult] = []
        requeued = dead = 0
        for job_id, slot in zip(ids, results, strict=True):
            if slot is not None:
                final.append(slot)
                continue
            outcome = next(applied)
            if isinstance(outcome, RustQueueError):
                final.append(ItemResult(id=job_id, ok=False, error_code=outcome.code, error_message=outcome.message))
                continue
            final.append(ItemResult(id=job_id, ok=True))
            if outcome.will_retry:
                requeued += 1
            else:
                dead += 1
        return NackBatchResult(requeued=requeued, dead=dead, failed=sum(1 for r in final if not r.ok), results=final)

    async def _apply_failures(
        self, specs: Sequence[FailSpec], now: datetime, *, nack: bool = False
    ) -> list[FailResult | RustQueueError]:
        """One transition for many failures (user fails, nacks, timeouts, stalls), each a
        compare-and-set on the delivery's token as read."""
        max_backoff = self.settings.max_backoff_ms
        changes: list[Change] = []
        plans: list[FailResult] = []
        for spec in specs:
            job = spec.job
            attempt = job.attempt + 1
            updates: dict[str, Any] = {"attempt": attempt, "last_error": spec.error, **LEASE_CLEARED}
            if spec.dead or attempt >= job.max_attempts:
                updates["state"] = "dlq"
                plans.append(FailResult(will_retry=False, next_attempt_at=None, state="dlq"))
            else:
                if spec.retry_delay_ms is not None:
                    delay = min(spec.retry_delay_ms, max_backoff)
                elif spec.no_backoff:
                    delay = 0
                else:
                    delay = backoff_delay_ms(job, attempt, max_backoff)
                if delay > 0:
                    until = now + timedelta(milliseconds=delay)
                    updates["state"] = "delayed"
                    updates["delay_until"] = until
                    plans.append(FailResult(will_retry=True, next_attempt_at=until, state="delayed"))
                else:
                    updates["state"] = "waiting"
                    updates["delay_until"] = None
                    plans.append(FailResult(will_retry=True, next_attempt_at=None, state="waiting"))
            changes.append(Change(id=job.id, expected=ACTIVE, updates=updates, lease_token=job.lease_token))
        outcomes = await self.storage.transition(changes, now)
        results: list[FailResult | RustQueueError] = []
        events: list[JobEvent] = []
        dead_jobs: list[Job] = []
        woken: set[str] = set()
        for spec, plan, outcome in zip(specs, plans, outcomes, strict=True):
            failed = outcome.job
            if outcome.outcome != OK or failed is None:
                results.append(self._outcome_error(outcome.id, outcome.outcome, ACTIVE_T, True))
                continue
            results.append(plan)
            counters = self._counters.of(failed.queue)
            if nack:
                counters.nacked += 1
            else:
                counters.failed += 1
            if plan.will_retry:
                events.append(
                    self._event(
                        "job.retrying",
                        failed.id,
                        failed.queue,
                        now,
                        state=failed.state,
                        attempt=failed.attempt,
                        reason=spec.error,
                    )
                )
                if failed.state == "waiting":
                    woken.add(failed.queue)
            else:
                counters.dead += 1
                dead_jobs.append(failed)
                events.append(
                    self._event(
                        "job.dlq",
                        failed.id,
                        failed.queue,
                        now,
                        state="dlq",
                        attempt=failed.attempt,
                        reason=spec.error,
                        job=failed,
                    )
                )
        self._wake(woken)
        if dead_jobs:
            events.extend(await self._cascade([j.id for j in dead_jobs], "dlq", now))
            events.extend(await self._remove_failed(dead_jobs, now))
        self._emit(events)
        return results
