"""Inspection and administration: jobs, queues, stats, explain (SEMANTICS §2.16, §4.1 to §4.3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from rustqueue_core.errors import (
    DuplicateKey,
    InvalidState,
    JobNotFound,
    QueueExists,
    QueueNotFound,
    RustQueueError,
    ValidationError,
)
from rustqueue_core.leases import LeaseMixin
from rustqueue_core.models import (
    BatchResult,
    Explanation,
    FlowInfo,
    Job,
    JobEvent,
    QueueConfig,
    QueueCounts,
    QueueInfo,
    QueueStats,
)
from rustqueue_core.storage import OK, UNFINISHED_STATES, Change, JobFilter
from rustqueue_core.validation import check_queue_name, check_queue_settings

_RETRYABLE = frozenset({"dlq", "cancelled"})
_RETRYABLE_T = ("dlq", "cancelled")
_PURGEABLE = ["waiting", "delayed", "blocked"]
_TERMINAL = ["completed", "dlq", "cancelled"]
_ORDER_FIELDS = ("ordering", "priority_kind")
_NO_RECENT_CLAIMS_S = 60.0
_ALL_STATES = [
    "created",
    "waiting",
    "delayed",
    "active",
    "completed",
    "failed",
    "dlq",
    "cancelled",
    "blocked",
]


def _ids(ids: str | Sequence[str]) -> list[str]:
    return [ids] if isinstance(ids, str) else list(ids)


class AdminMixin(LeaseMixin):
    # ------------------------------------------------------------------ jobs
    async def get_job(self, job_id: str) -> Job | None:
        self._gate_read()
        return (await self.storage.get_jobs([job_id]))[0]

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        self._gate_read()
        return await self.storage.get_jobs(list(ids))

    async def list_jobs(
        self,
        queue: str | None = None,
        *,
        states: Sequence[str] | None = None,
        flow_id: str | None = None,
        group_id: str | None = None,
        tags: Sequence[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        self._gate_read()
        if limit <= 0:
            return [], None
        flt = JobFilter(
            queue=queue,
            states=list(states) if states else None,
            flow_id=flow_id,
            group_id=group_id,
            tags=list(tags) if tags else None,
        )
        return await self.storage.find_jobs(flt, limit, cursor)

    async def dlq(self, queue: str, limit: int = 50) -> list[Job]:
        self._gate_read()
        if limit <= 0:
            return []
        jobs, _ = await self.storage.find_jobs(JobFilter(queue=queue, states=["dlq"], order="updated_desc"), limit)
        return jobs

    async def flow(self, flow_id: str) -> FlowInfo:
        self._gate_read()
        jobs: list[Job] = []
        cursor: str | None = None
        while True:
            page, cursor = await self.storage.find_jobs(JobFilter(flow_id=flow_id), 1000, cursor)
            jobs.extend(page)
            if cursor is None:
                break
        summary = {state: 0 for state in _ALL_STATES}
        for job in jobs:
            summary[job.state] = summary.get(job.state, 0) + 1
        summary["total"] = len(jobs)
        return FlowInfo(flow_id=flow_id, jobs=jobs, summary=summary)

    async def explain(self, job_id: str) -> list[Explanation]:
        """Why the job is not running (SEMANTICS §2.16)."""
        self._gate_read()
        job = (await self.storage.get_jobs([job_id]))[0]
        if job is None:
            raise JobNotFound(job_id)
        now = self.clock.now()
        out: list[Explanation] = []
        config = self._config(job.queue)
        if job.state in ("completed", "dlq", "cancelled"):
            detail = f"job is {job.state}"
            if job.last_error:
                detail += f": {job.last_error}"
            return [Explanation(code="terminal", detail=detail)]
        if job.state == "active":
            expiry = job.lease_expires_at.isoformat() if job.lease_expires_at else "?"
            return [
                Explanation(
                    code="lease_held",
                    detail=f"held by worker {job.worker_id!r} until {expiry}",
                )
            ]
        if job.state == "delayed" and job.delay_until is not None:
            out.append(Explanation(code="delayed_until", detail=f"delayed until {job.delay_until.isoformat()}"))
        if job.state == "blocked":
            parents = [p for p in await self.storage.get_jobs(job.depends_on) if p is not None]
            pending = [f"{p.id} ({p.state})" for p in parents if p.state != "completed"]
            out.append(Explanation(code="blocked_by", detail="waiting for " + ", ".join(pending or ["parents"])))
        if config.paused:
            out.append(Explanation(code="queue_paused", detail=f"queue '{job.queue}' is paused (pushes rejected)"))
        if config.consume_paused:
            out.append(Explanation(code="queue_consume_paused", detail=f"queue '{job.queue}' is paused for consumers"))
        if job.group_id is not None and config.group_concurrency is not None:
            active, _ = await self.storage.find_jobs(
                JobFilter(queue=job.queue, group_id=job.group_id, states=["active"]), config.group_concurrency
            )
            if len(active) >= config.group_concurrency:
                out.append(
                    Explanation(
                        code="group_saturated",
                        detail=f"group '{job.group_id}' has {len(active)} active jobs of {config.group_concurrency}",
                    )
                )
        if job.expires_at is not None:
            verb = "expired at" if job.expires_at <= now else "expires at"
            out.append(Explanation(code="expires_at", detail=f"{verb} {job.expires_at.isoformat()}"))
        if job.state == "waiting":
            ahead, _ = await self.storage.find_jobs(
                JobFilter(queue=job.queue, states=["waiting"], order="sort_key"), 100_000
            )
            position = sum(1 for j in ahead if j.sort_key < job.sort_key)
            if position:
                out.append(Explanation(code="ahead_in_line", detail=f"{position} claimable job(s) ahead"))
            last = self._last_claim.get(job.queue)
            if last is None or self.clock.monotonic() - last > _NO_RECENT_CLAIMS_S:
                out.append(
                    Explanation(code="no_recent_claims", detail=f"no claims on queue '{job.queue}' in the last 60 s")
                )
        return out

    async def retry(self, ids: str | Sequence[str]) -> BatchResult:
        """dlq/cancelled → waiting (or blocked) with ``attempt = 0``."""
        self._gate_mutation()
        job_ids = _ids(ids)
        now = self.clock.now()
        jobs = await self.storage.get_jobs(job_ids)
        parents: dict[str, Job | None] = {}
        await self._fetch_into(parents, {p for j in jobs if j is not None for p in j.depends_on})
        results: list[tuple[str, RustQueueError | None]] = []
        changes: list[Change] = []
        positions: list[int] = []
        for job_id, job in zip(job_ids, jobs, strict=True):
            try:
                if job is None:
                    raise JobNotFound(job_id)
                if job.state not in _RETRYABLE:
                    raise InvalidState(job.state, _RETRYABLE_T, job_id)
                state = "waiting"
                for parent_id in job.depends_on:
                    parent = parents.get(parent_id)
                    if parent is None or parent.state in _RETRYABLE:
                        raise ValidationError(f"Dependency parent job '{parent_id}' is not available")
                    if parent.state != "completed":
                        state = "blocked"
                if job.unique_key is not None:
                    holders, _ = await self.storage.find_jobs(
                        JobFilter(queue=job.queue, unique_key=job.unique_key, states=sorted(UNFINISHED_STATES)),
                        1,
                    )
                    if holders and holders[0].id != job.id:
                        raise DuplicateKey(job.unique_key, holders[0].id)
            except RustQueueError as exc:
                results.append((job_id, exc))
                continue
            positions.append(len(results))
            results.append((job_id, None))
            changes.append(
                Change(
                    id=job_id,
                    expected=_RETRYABLE,
                    updates={"state": state, "attempt": 0, "delay_until": None, "completed_at": None},
                )
            )
        events: list[JobEvent] = []
        if changes:
            outcomes = await self.storage.transition(changes, now)
            for position, outcome in zip(positions, outcomes, strict=True):
                if outcome.outcome != OK or outcome.job is None:
                    results[position] = (
                        outcome.id,
                        self._outcome_error(outcome.id, outcome.outcome, _RETRYABLE_T, False),
                    )
                else:
                    job = outcome.job
                    events.append(self._event("job.pushed", job.id, job.queue, now, state=job.state, name=job.name))
                    self._wake([job.queue])
        self._emit(events)
        return self._batch_result(results)

    async def promote(self, ids: str | Sequence[str]) -> BatchResult:
        """delayed → waiting now."""
        self._gate_mutation()
        job_ids = _ids(ids)
        now = self.clock.now()
        changes = [
            Change(id=i, expected=frozenset({"delayed"}), updates={"state": "waiting", "delay_until": None})
            for i in job_ids
        ]
        outcomes = await self.storage.transition(changes, now) if changes else []
        results: list[tuple[str, RustQueueError | None]] = []
        events: list[JobEvent] = []
        for outcome in outcomes:
            if outcome.outcome == OK and outcome.job is not None:
                results.append((outcome.id, None))
                events.append(self._event("job.promoted", outcome.id, outcome.job.queue, now, state="waiting"))
                self._wake([outcome.job.queue])
            else:
                results.append((outcome.id, self._outcome_error(outcome.id, outcome.outcome, ("delayed",), False)))
        self._emit(events)
        return self._batch_result(results)

    async def delete_jobs(self, ids: str | Sequence[str]) -> int:
        """Delete jobs in any state; blocked dependants of unfinished ones go to the DLQ."""
        self._gate_mutation()
        now = self.clock.now()
        deleted = await self.storage.delete_jobs(_ids(ids))
        self._emit(await self._after_delete(deleted, now))
        return len(deleted)

    # ------------------------------------------------------------------ queues
    async def queues(self) -> list[QueueInfo]:
        self._gate_read()
        names = await self.storage.queue_names()
        counts = await self.storage.count_jobs()
        infos: list[QueueInfo] = []
        for name in names:
            config = self._configs.get(name)
            infos.append(
                QueueInfo(
                    name=name,
                    counts=counts.get(name, QueueCounts()),
                    paused=bool(config and config.paused),
                    consume_paused=bool(config and config.consume_paused),
                    config=config or QueueConfig(name=name),
                )
            )
        return infos

    async def counts(self, queue: str) -> QueueCounts:
        self._gate_read()
        return (await self.storage.count_jobs([queue])).get(queue, QueueCounts())

    async def stats(self, queue: str | None = None) -> list[QueueStats]:
        self._gate_read()
        if queue is None:
            names = await self.storage.queue_names()
            counts = await self.storage.count_jobs()
        else:
            names = [queue]
            counts = await self.storage.count_jobs([queue])
        mono = self.clock.monotonic()
        result: list[QueueStats] = []
        for name in names:
            c = counts.get(name, QueueCounts())
            counters = self._counters.of(name)
            publish_rate, ack_rate = self._counters.rates(name, mono)
            config = self._configs.get(name)
            result.append(
                QueueStats(
                    name=name,
                    counts=c,
                    pending=c.waiting + c.delayed + c.blocked,
                    locked=c.active,
                    published=counters.published,
                    claimed=counters.claimed,
                    acked=counters.acked,
                    nacked=counters.nacked,
                    failed=counters.failed,
                    dead=counters.dead,
                    rate_limited=counters.rate_limited,
                    publish_rate_per_sec=publish_rate,
                    ack_rate_per_sec=ack_rate,
                    paused=bool(config and config.paused),
                    consume_paused=bool(config and config.consume_paused),
                )
            )
        return result

    async def _queue_exists(self, name: str) -> bool:
        if name in self._configs:
            return True
        return name in await self.storage.queue_names()

    def _check_capable(self, changes: dict[str, Any]) -> None:
        if changes.get("group_concurrency") is not None and not self.capabilities.group_limits:
            raise ValidationError("group_concurrency is not supported by this storage backend")

    async def create_queue(self, name: str, **config: Any) -> QueueConfig:
        self._gate_mutation()
        check_queue_name(name)
        changes = check_queue_settings(config)
        self._check_capable(changes)
        if await self._queue_exists(name):
            raise QueueExists(name)
        created = QueueConfig(name=name, created_at=self.clock.now(), **changes)
        await self.storage.put_queue_config(created)
        self._apply_config(created)
        return created

    async def configure_queue(self, name: str, **changes: Any) -> QueueConfig:
        self._gate_mutation()
        check_queue_name(name)
        clean = check_queue_settings(changes)
        self._check_capable(clean)
        current = self._configs.get(name) or QueueConfig(name=name, created_at=self.clock.now())
        if any(k in clean and clean[k] != getattr(current, k) for k in _ORDER_FIELDS):
            counts = (await self.storage.count_jobs([name])).get(name, QueueCounts())
            unfinished = counts.waiting + counts.delayed + counts.blocked + counts.active
            if unfinished:
                raise _ordering_locked(name, unfinished)
        updated = msgspec.structs.replace(current, **clean)
        await self.storage.put_queue_config(updated)
        self._apply_config(updated)
        if not updated.consume_paused:
            self._wake([name])
        return updated

    async def get_queue_config(self, name: str) -> QueueConfig:
        """Stored config, or the defaults for a queue without one."""
        self._gate_read()
        return self._config(name)

    async def pause_queue(self, name: str, *, consume: bool = False) -> None:
        changes: dict[str, Any] = {"paused": True}
        if consume:
            changes["consume_paused"] = True
        await self.configure_queue(name, **changes)

    async def resume_queue(self, name: str) -> None:
        await self.configure_queue(name, paused=False, consume_paused=False)

    async def rename_queue(self, old: str, new: str) -> int:
        self._gate_mutation()
        check_queue_name(old)
        check_queue_name(new)
        if not await self._queue_exists(old):
            raise QueueNotFound(old)
        if await self._queue_exists(new):
            raise QueueExists(new)
        moved = await self.storage.rename_queue(old, new, self.clock.now())
        config = self._configs.pop(old, None)
        if config is not None:
            self._configs[new] = msgspec.structs.replace(config, name=new)
        self._limiter.rename(old, new)
        self._counters.rename(old, new)
        self._wake([new])
        return moved

    async def _delete_where(self, flt: JobFilter, now: datetime) -> int:
        total = 0
        events: list[JobEvent] = []
        while True:
            deleted = await self.storage.delete_jobs(filter=flt, limit=self.settings.housekeeping_batch)
            if not deleted:
                break
            total += len(deleted)
            events.extend(await self._after_delete(deleted, now))
        self._emit(events)
        return total

    async def purge_queue(self, name: str, include_finished: bool = False) -> int:
        self._gate_mutation()
        check_queue_name(name)
        if not await self._queue_exists(name):
            raise QueueNotFound(name)
        states = _PURGEABLE + (_TERMINAL if include_finished else [])
        return await self._delete_where(JobFilter(queue=name, states=states), self.clock.now())

    async def delete_queue(self, name: str) -> int:
        self._gate_mutation()
        check_queue_name(name)
        if not await self._queue_exists(name):
            raise QueueNotFound(name)
        count = await self._delete_where(JobFilter(queue=name), self.clock.now())
        await self.storage.delete_queue_config(name)
        self._configs.pop(name, None)
        self._limiter.drop(name)
        return count

    async def purge_all(self) -> int:
        self._gate_mutation()
        return await self._delete_where(JobFilter(states=_PURGEABLE), self.clock.now())

    async def delete_all(self) -> int:
        self._gate_mutation()
        count = await self._delete_where(JobFilter(), self.clock.now())
        for name in list((await self.storage.get_queue_configs()).keys()):
            await self.storage.delete_queue_config(name)
            self._limiter.drop(name)
        self._configs.clear()
        return count


def _ordering_locked(queue: str, unfinished: int) -> InvalidState:
    error = InvalidState("waiting", ("empty",))
    error.message = (
        f"Queue '{queue}' has {unfinished} unfinished job(s): ordering and priority_kind change only while it has none"
    )
    error.args = (error.message,)
    return error
