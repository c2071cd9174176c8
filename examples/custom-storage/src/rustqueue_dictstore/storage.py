"""``DictStorage``: the smallest complete rustqueue storage backend.

Every job lives in one dict and every query is a linear scan, which keeps the code short enough to
read in one sitting. Each method runs without awaiting, so each call is atomic on the event loop:
that is the whole concurrency story of a single-process, non-durable store. A real backend keeps the
same shape and swaps the dict for tables and indexes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from rustqueue_core.models import Capabilities, Job, QueueConfig, QueueCounts, Schedule
from rustqueue_core.storage import (
    LEASE_LOST,
    NOT_FOUND,
    OK,
    UNFINISHED_STATES,
    Change,
    ChangeOutcome,
    CompleteItem,
    CompleteOutcome,
    InsertConflict,
    JobFilter,
    matches_expected,
    new_lease_token,
    state_mismatch,
)

_copy = msgspec.structs.replace
_COUNTED_STATES = frozenset(QueueCounts.__struct_fields__)


class DictStorage:
    """In-memory, one process, not durable. Claims due delayed jobs itself and honours group limits."""

    capabilities = Capabilities(claims_due_delayed=True, group_limits=True, max_batch=10_000)

    def __init__(self, url: str = "dict://", options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.jobs: dict[str, Job] = {}
        self.configs: dict[str, QueueConfig] = {}
        self.schedules: dict[str, Schedule] = {}

    async def open(self) -> None:
        """Nothing to open or migrate."""

    async def close(self) -> None:
        """Nothing to flush: the dict is all there is."""

    # ------------------------------------------------------------------ helpers
    def _unique_holder(self, queue: str, key: str) -> str | None:
        for job in self.jobs.values():
            if job.queue == queue and job.unique_key == key and job.state in UNFINISHED_STATES:
                return job.id
        return None

    def _check_unique(self, jobs: Sequence[Job]) -> None:
        seen: dict[tuple[str, str], str] = {}
        for index, job in enumerate(jobs):
            if job.unique_key is None or job.state not in UNFINISHED_STATES:
                continue
            key = (job.queue, job.unique_key)
            holder = seen.get(key) or self._unique_holder(*key)
            if holder is not None:
                raise InsertConflict(index, job.unique_key, holder)
            seen[key] = job.id

    def _blocked_children(self, parent_id: str) -> list[str]:
        return [j.id for j in self.jobs.values() if j.state == "blocked" and parent_id in j.depends_on]

    # ------------------------------------------------------------------ jobs
    async def insert_jobs(self, jobs: Sequence[Job], now: datetime) -> None:
        self._check_unique(jobs)  # raises before anything is written: all or nothing
        for job in jobs:
            self.jobs[job.id] = _copy(job)

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        return [_copy(job) if (job := self.jobs.get(i)) is not None else None for i in ids]

    async def claim(
        self,
        queue: str,
        n: int,
        now: datetime,
        *,
        consumer_id: str | None,
        lease_ms: int,
        group_limit: int | None = None,
    ) -> list[Job]:
        if n <= 0:
            return []
        candidates = sorted(
            (
                job
                for job in self.jobs.values()
                if job.queue == queue
                and (
                    job.state == "waiting"
                    or (job.state == "delayed" and job.delay_until is not None and job.delay_until <= now)
                )
                and (job.expires_at is None or job.expires_at > now)
            ),
            key=lambda job: (job.sort_key, job.id),
        )
        active_per_group: dict[str, int] = {}
        if group_limit is not None:
            for job in self.jobs.values():
                if job.queue == queue and job.state == "active" and job.group_id is not None:
                    active_per_group[job.group_id] = active_per_group.get(job.group_id, 0) + 1
        claimed: list[Job] = []
        for job in candidates:
            if len(claimed) == n:
                break
            if group_limit is not None and job.group_id is not None:
                if active_per_group.get(job.group_id, 0) >= group_limit:
                    continue
                active_per_group[job.group_id] = active_per_group.get(job.group_id, 0) + 1
            taken = _copy(
                job,
                state="active",
                started_at=now,
                updated_at=now,
                deliveries=job.deliveries + 1,
                worker_id=consumer_id,
                lease_token=new_lease_token(),
                lease_ms=lease_ms,
                lease_expires_at=now + timedelta(milliseconds=lease_ms),
                deadline_at=now + timedelta(milliseconds=job.timeout_ms) if job.timeout_ms else None,
                last_heartbeat=None,
                delay_until=None,
            )
            self.jobs[job.id] = taken
            claimed.append(_copy(taken))
        return claimed

    async def complete(self, items: Sequence[CompleteItem], now: datetime) -> list[CompleteOutcome]:
        outcomes: list[CompleteOutcome] = []
        for item in items:
            job = self.jobs.get(item.id)
            if job is None:
                outcomes.append(CompleteOutcome(id=item.id, outcome=NOT_FOUND))
                continue
            if job.state != "active":
                outcomes.append(CompleteOutcome(id=item.id, outcome=state_mismatch(job.state)))
                continue
            if (item.lease_token is not None and item.lease_token != job.lease_token) or (
                item.consumer_id is not None and item.consumer_id != job.worker_id
            ):
                outcomes.append(CompleteOutcome(id=item.id, outcome=LEASE_LOST))
                continue
            done = _copy(
                job,
                state="completed",
                result=item.result,
                completed_at=now,
                updated_at=now,
                lease_token=None,
                lease_expires_at=None,
                lease_ms=None,
                deadline_at=None,
                last_heartbeat=None,
            )
            self.jobs[job.id] = done
            skipped: list[tuple[int, str | None]] = []
            for index, spawn in enumerate(item.spawned):
                holder = self._unique_holder(spawn.queue, spawn.unique_key) if spawn.unique_key else None
                if holder is not None and spawn.state in UNFINISHED_STATES:
                    skipped.append((index, holder))
                else:
                    self.jobs[spawn.id] = _copy(spawn)
            outcomes.append(
                CompleteOutcome(
                    id=item.id,
                    outcome=OK,
                    job=_copy(done),
                    skipped=skipped,
                    blocked_children=self._blocked_children(job.id),
                )
            )
        return outcomes

    async def transition(self, changes: Sequence[Change], now: datetime) -> list[ChangeOutcome]:
        outcomes: list[ChangeOutcome] = []
        for change in changes:
            job = self.jobs.get(change.id)
            if job is None:
                outcomes.append(ChangeOutcome(id=change.id, outcome=NOT_FOUND))
                continue
            verdict = matches_expected(job, change)
            if verdict != OK:
                outcomes.append(ChangeOutcome(id=change.id, outcome=verdict))
                continue
            changed = _copy(job, updated_at=now, **change.updates)
            self.jobs[job.id] = changed
            outcomes.append(ChangeOutcome(id=change.id, outcome=OK, job=_copy(changed)))
        return outcomes

    async def promote_due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = sorted(
            (j for j in self.jobs.values() if j.state == "delayed" and _at_most(j.delay_until, now)),
            key=lambda j: (j.delay_until, j.id),
        )[:limit]
        for job in due:
            self.jobs[job.id] = _copy(job, state="waiting", delay_until=None, updated_at=now)
        return [(job.id, job.queue) for job in due]

    # ------------------------------------------------------------------ queries
    def _matches(self, job: Job, f: JobFilter) -> bool:
        checks = (
            f.ids is None or job.id in f.ids,
            f.queue is None or job.queue == f.queue,
            f.queues is None or job.queue in f.queues,
            f.states is None or job.state in f.states,
            f.flow_id is None or job.flow_id == f.flow_id,
            f.group_id is None or job.group_id == f.group_id,
            f.tags is None or set(f.tags).issubset(job.tags),
            f.children_of is None or any(p in job.depends_on for p in f.children_of),
            f.unique_key is None or job.unique_key == f.unique_key,
            f.remove_on_complete is None or job.remove_on_complete == f.remove_on_complete,
            _at_most(job.delay_until, f.delay_until_lte),
            _before(job.lease_expires_at, f.lease_expires_before),
            _before(job.deadline_at, f.deadline_before),
            _at_most(job.expires_at, f.expires_at_lte),
            _before(job.completed_at, f.completed_before),
            _before(job.updated_at, f.updated_before),
        )
        if not all(checks):
            return False
        return not (f.without_blocked_children and self._blocked_children(job.id))

    async def find_jobs(self, filter: JobFilter, limit: int, cursor: str | None = None) -> tuple[list[Job], str | None]:
        matched = [job for job in self.jobs.values() if self._matches(job, filter)]
        keyed = sorted(((_order_key(job, filter.order), job) for job in matched), key=lambda kj: kj[0])
        if filter.order == "updated_desc":
            keyed.reverse()
            after = [kj for kj in keyed if cursor is None or kj[0] < cursor]
        else:
            after = [kj for kj in keyed if cursor is None or kj[0] > cursor]
        page = after[:limit] if limit >= 0 else after
        next_cursor = page[-1][0] if page and len(after) > len(page) else None
        return [_copy(job) for _, job in page], next_cursor

    async def count_jobs(self, queues: Sequence[str] | None = None) -> dict[str, QueueCounts]:
        tallies: dict[str, dict[str, int]] = {}
        for job in self.jobs.values():
            if queues is not None and job.queue not in queues:
                continue
            state = "waiting" if job.state == "created" else job.state
            if state in _COUNTED_STATES:
                per_state = tallies.setdefault(job.queue, {})
                per_state[state] = per_state.get(state, 0) + 1
        return {queue: QueueCounts(**per_state) for queue, per_state in tallies.items()}

    async def delete_jobs(
        self, ids: Sequence[str] | None = None, filter: JobFilter | None = None, limit: int = 1000
    ) -> list[Job]:
        if ids is not None:
            doomed: Iterable[Job] = [job for i in ids if (job := self.jobs.get(i)) is not None]
        elif filter is not None:
            doomed = (await self.find_jobs(filter, limit))[0]
        else:
            return []
        return [self.jobs.pop(job.id) for job in doomed if job.id in self.jobs]

    async def rename_queue(self, old: str, new: str, now: datetime) -> int:
        moving = [job for job in self.jobs.values() if job.queue == old]
        for job in moving:
            self.jobs[job.id] = _copy(job, queue=new)
        config = self.configs.pop(old, None)
        if config is not None:
            self.configs[new] = _copy(config, name=new)
        return len(moving)

    async def queue_names(self) -> list[str]:
        return sorted({job.queue for job in self.jobs.values()} | self.configs.keys())

    # ------------------------------------------------------------------ queue configs
    async def get_queue_configs(self) -> dict[str, QueueConfig]:
        return {name: _copy(config) for name, config in self.configs.items()}

    async def put_queue_config(self, config: QueueConfig) -> None:
        self.configs[config.name] = _copy(config)

    async def delete_queue_config(self, name: str) -> None:
        self.configs.pop(name, None)

    # ------------------------------------------------------------------ schedules
    async def put_schedule(self, schedule: Schedule) -> None:
        self.schedules[schedule.name] = _copy(schedule)

    async def get_schedule(self, name: str) -> Schedule | None:
        found = self.schedules.get(name)
        return _copy(found) if found is not None else None

    async def list_schedules(self, active_only: bool = False) -> list[Schedule]:
        return [_copy(s) for _, s in sorted(self.schedules.items()) if not (active_only and s.paused)]

    async def delete_schedule(self, name: str) -> bool:
        return self.schedules.pop(name, None) is not None

    async def fire_schedule(
        self,
        name: str,
        expected_next_run_at: datetime | None,
        updates: dict[str, Any],
        jobs: Sequence[Job],
        now: datetime,
    ) -> bool:
        schedule = self.schedules.get(name)
        if schedule is None or schedule.next_run_at != expected_next_run_at:
            return False  # another engine fired this slot first
        await self.insert_jobs(jobs, now)  # raises InsertConflict before changing the schedule
        self.schedules[name] = _copy(schedule, updated_at=now, **updates)
        return True


def _at_most(value: datetime | None, bound: datetime | None) -> bool:
    return bound is None or (value is not None and value <= bound)


def _before(value: datetime | None, bound: datetime | None) -> bool:
    return bound is None or (value is not None and value < bound)


def _order_key(job: Job, order: str) -> str:
    if order == "sort_key":
        return f"{job.sort_key.hex()}:{job.id}"
    if order == "updated_desc":
        return f"{job.updated_at.isoformat()}:{job.id}"
    if order == "created":
        return f"{job.created_at.isoformat()}:{job.id}"
    return job.id
