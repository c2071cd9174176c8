"""DAG flows and follow-ups (SEMANTICS §2.10, §2.11): unblocking, cascades, reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from rustqueue_core.errors import RustQueueError, ValidationError
from rustqueue_core.models import Job, JobEvent, LogEntry, NewJob
from rustqueue_core.pushing import PushMixin, Taken
from rustqueue_core.storage import OK, Change, JobFilter
from rustqueue_core.validation import options_from_mapping

log = logging.getLogger("rustqueue.flows")

MAX_LOGS = 1000
_PAGE = 1000
_BLOCKED = frozenset({"blocked"})
_DEAD = frozenset({"dlq", "cancelled"})


def with_logs(job: Job, now: datetime, messages: Iterable[str]) -> list[LogEntry]:
    """The job's logs plus new entries, newest 1000 kept."""
    logs = list(job.logs)
    logs.extend(LogEntry(timestamp=now, message=m) for m in messages)
    return logs[-MAX_LOGS:]


class Spawn(msgspec.Struct, kw_only=True):
    """Follow-ups prepared for one acked parent."""

    jobs: list[Job]
    taken: Taken
    notes: list[str]
    #: spec index of each prepared job, for notes about skipped inserts
    spec_indexes: list[int]
    queues: list[str]


class FlowMixin(PushMixin):
    # ------------------------------------------------------------------ follow-ups
    async def _prepare_followups(self, parent: Job, result: Any, now: datetime) -> Spawn:
        spawn = Spawn(jobs=[], taken=[], notes=[], spec_indexes=[], queues=[])
        metadata = parent.metadata
        if not isinstance(metadata, dict) or "follow_ups" not in metadata:
            return spawn
        specs = metadata["follow_ups"]
        if not isinstance(specs, list) or not all(
            isinstance(s, dict) and isinstance(s.get("queue"), str) and isinstance(s.get("name"), str) for s in specs
        ):
            spawn.notes.append("follow_ups ignored: expected a list of {queue, name, data?, options?, flow_id?}")
            return spawn
        inherited = {k: v for k, v in metadata.items() if k != "follow_ups"} or None
        for i, spec in enumerate(specs):
            queue = spec["queue"]
            try:
                raw = spec.get("options") or {}
                if not isinstance(raw, dict):
                    raise ValidationError("follow-up options must be an object")
                options = options_from_mapping(raw)
                depends = list(options.depends_on or [])
                if parent.id not in depends:
                    depends.append(parent.id)
                options = msgspec.structs.replace(
                    options,
                    depends_on=depends,
                    flow_id=options.flow_id or spec.get("flow_id") or parent.flow_id,
                    metadata=options.metadata if options.metadata is not None else inherited,
                )
                default_data = result if result is not None else {}
                data = spec.get("data", default_data)
                item = NewJob(queue=queue, name=spec["name"], data=data, options=options)
                jobs, taken = await self._prepare(
                    [item], None, now, index_names=False, completing=frozenset({parent.id})
                )
            except RustQueueError as exc:
                spawn.notes.append(f"follow-up {i} to {queue} rejected: {exc.code}: {exc.message}")
                continue
            spawn.jobs.extend(jobs)
            spawn.taken.extend(taken)
            spawn.spec_indexes.append(i)
            spawn.queues.append(queue)
        return spawn

    async def _append_logs(self, notes: dict[str, list[str]], now: datetime) -> None:
        """Engine notes on finished jobs (follow-up rejections), written after the ack's commit."""
        if not notes:
            return
        jobs = await self.storage.get_jobs(list(notes))
        changes = [
            Change(
                id=job.id,
                expected=frozenset({job.state}),
                updates={"logs": with_logs(job, now, notes[job.id])},
            )
            for job in jobs
            if job is not None
        ]
        if changes:
            await self.storage.transition(changes, now)

    # ------------------------------------------------------------------ unblocking
    async def _unblock_children(
        self, parent_ids: Sequence[str], now: datetime, child_ids: Sequence[str] | None = None
    ) -> tuple[list[JobEvent], set[str]]:
        """Re-evaluate blocked children of ``parent_ids`` after their commit. Returns the events and
        the parents that still have a blocked child."""
        if child_ids is None:
            children, _ = await self.storage.find_jobs(
                JobFilter(children_of=list(parent_ids), states=["blocked"]), limit=1_000_000
            )
        elif child_ids:
            children = [c for c in await self.storage.get_jobs(list(child_ids)) if c is not None]
        else:
            return [], set()
        events = await self._evaluate_blocked(children, now)
        still: set[str] = set()
        unblocked = {e.job_id for e in events}
        wanted = set(parent_ids)
        for child in children:
            if child.state == "blocked" and child.id not in unblocked:
                still.update(p for p in child.depends_on if p in wanted)
        return events, still

    async def _evaluate_blocked(self, children: Sequence[Job], now: datetime) -> list[JobEvent]:
        """Unblock children whose parents are all completed; cascade those with a dead parent."""
        children = [c for c in children if c.state == "blocked"]
        if not children:
            return []
        cache: dict[str, Job | None] = {}
        await self._fetch_into(cache, {p for c in children for p in c.depends_on})
        changes: list[Change] = []
        dead_roots: list[tuple[str, str, str]] = []
        for child in children:
            ready = True
            for parent_id in child.depends_on:
                parent = cache.get(parent_id)
                if parent is None:
                    dead_roots.append((child.id, "dlq", f"parent job '{parent_id}' was deleted"))
                    ready = False
                    break
                if parent.state in _DEAD:
                    if parent.state == "cancelled":
                        dead_roots.append((child.id, "cancelled", f"parent job '{parent_id}' was cancelled"))
                    else:
                        dead_roots.append((child.id, "dlq", f"parent job '{parent_id}' moved to DLQ"))
                    ready = False
                    break
                if parent.state != "completed":
                    ready = False
                    break
            if ready:
                delayed = child.delay_until is not None and child.delay_until > now
                changes.append(
                    Change(
                        id=child.id,
                        expected=_BLOCKED,
                        updates={"state": "delayed"} if delayed else {"state": "waiting", "delay_until": None},
                    )
                )
        events: list[JobEvent] = []
        if changes:
            outcomes = await self.storage.transition(changes, now)
            woken: set[str] = set()
            for outcome in outcomes:
                if outcome.outcome == OK and outcome.job is not None:
                    job = outcome.job
                    events.append(self._event("job.unblocked", job.id, job.queue, now, state=job.state))
                    woken.add(job.queue)
            self._wake(woken)
        if dead_roots:
            events.extend(await self._kill_blocked(dead_roots, now))
        return events

    # ------------------------------------------------------------------ cascades
    async def _kill_blocked(self, targets: list[tuple[str, str, str]], now: datetime) -> list[JobEvent]:
        """Move blocked jobs ``(id, "dlq"|"cancelled", reason)`` to their end state, then cascade."""
        changes = [
            Change(id=job_id, expected=_BLOCKED, updates={"state": state, "last_error": reason})
            for job_id, state, reason in targets
        ]
        outcomes = await self.storage.transition(changes, now)
        events: list[JobEvent] = []
        dead: list[Job] = []
        cancelled: list[Job] = []
        for outcome in outcomes:
            job = outcome.job
            if outcome.outcome != OK or job is None:
                continue
            if job.state == "dlq":
                dead.append(job)
                self._counters.of(job.queue).dead += 1
                events.append(
                    self._event(
                        "job.dlq",
                        job.id,
                        job.queue,
                        now,
                        state="dlq",
                        attempt=job.attempt,
                        reason=job.last_error,
                    )
                )
            else:
                cancelled.append(job)
                events.append(
                    self._event("job.cancelled", job.id, job.queue, now, state="cancelled", reason=job.last_error)
                )
        if dead:
            events.extend(await self._cascade([j.id for j in dead], "dlq", now))
            events.extend(await self._remove_failed(dead, now))
        if cancelled:
            events.extend(await self._cascade([j.id for j in cancelled], "cancelled", now))
        return events

    async def _cascade(self, parent_ids: Sequence[str], kind: str, now: datetime) -> list[JobEvent]:
        """Blocked descendants of parents that entered dlq / were cancelled / were deleted."""
        if not parent_ids:
            return []
        children, _ = await self.storage.find_jobs(
            JobFilter(children_of=list(parent_ids), states=["blocked"]), limit=1_000_000
        )
        if not children:
            return []
        wanted = set(parent_ids)
        targets: list[tuple[str, str, str]] = []
        for child in children:
            parent_id = next((p for p in child.depends_on if p in wanted), parent_ids[0])
            if kind == "cancelled":
                targets.append((child.id, "cancelled", f"parent job '{parent_id}' was cancelled"))
            elif kind == "deleted":
                targets.append((child.id, "dlq", f"parent job '{parent_id}' was deleted"))
            else:
                targets.append((child.id, "dlq", f"parent job '{parent_id}' moved to DLQ"))
        return await self._kill_blocked(targets, now)

    async def _remove_failed(self, jobs: Sequence[Job], now: datetime) -> list[JobEvent]:
        """``remove_on_fail``: delete DLQ entries after their cascade."""
        doomed = [j.id for j in jobs if j.remove_on_fail]
        if not doomed:
            return []
        deleted = await self.storage.delete_jobs(doomed)
        return [self._event("job.deleted", j.id, j.queue, now, state=j.state) for j in deleted]

    async def _after_delete(self, deleted: Sequence[Job], now: datetime) -> list[JobEvent]:
        """Events for deleted jobs and the cascade of those deleted before completing."""
        events = [self._event("job.deleted", j.id, j.queue, now, state=j.state) for j in deleted]
        unfinished = [j.id for j in deleted if j.state != "completed"]
        events.extend(await self._cascade(unfinished, "deleted", now))
        return events

    # ------------------------------------------------------------------ reconciliation
    async def _reconcile(self, now: datetime) -> list[JobEvent]:
        """Repair interrupted unblocks and cascades; run deferred ``remove_on_complete`` deletions."""
        events: list[JobEvent] = []
        cursor: str | None = None
        while True:
            blocked, cursor = await self.storage.find_jobs(JobFilter(states=["blocked"]), _PAGE, cursor)
            events.extend(await self._evaluate_blocked(blocked, now))
            if cursor is None:
                break
        found, _ = await self.storage.find_jobs(
            JobFilter(states=["completed"], remove_on_complete=True, without_blocked_children=True),
            self.settings.housekeeping_batch,
        )
        # Re-checked here so a backend that ignored a filter field can never delete other jobs.
        doomed = [j.id for j in found if j.remove_on_complete and j.state == "completed"]
        deleted = await self.storage.delete_jobs(doomed) if doomed else []
        events.extend(self._event("job.deleted", j.id, j.queue, now, state=j.state) for j in deleted)
        return events
