"""In-process storage (scheme ``memory://``): tests and ephemeral use, same contract as every backend.

Jobs live in a dict; each queue keeps a heap of claimable jobs in ``sort_key`` order and a heap of
delayed jobs by ``delay_until``. Heap entries are validated when popped (lazy deletion), so state
changes never search the heaps. Counts per queue and state, the unique-key index and the
parent → children index are kept up to date on every change. Every method runs without awaiting in
between, so each call is atomic with respect to the event loop.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from rustqueue_core.hookspecs import hookimpl
from rustqueue_core.models import Capabilities, Job, QueueConfig, QueueCounts, Schedule, StorageSpec
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
    new_lease_tokens,
    state_mismatch,
)

_copy = msgspec.structs.replace
_COUNT_FIELDS = frozenset(QueueCounts.__struct_fields__)


class _QueueIndex:
    __slots__ = ("counts", "delayed", "ready", "ready_ids")

    def __init__(self) -> None:
        self.ready: list[tuple[bytes, str]] = []
        self.ready_ids: set[str] = set()
        self.delayed: list[tuple[datetime, str]] = []
        self.counts: dict[str, int] = {}


class MemoryStorage:
    """The ``memory`` backend. Not durable, one process."""

    capabilities = Capabilities(group_limits=True, claims_due_delayed=True, ordered_writes=True, max_batch=100_000)

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, _QueueIndex] = {}
        self._by_state: dict[str, dict[str, None]] = {}
        self._unique: dict[tuple[str, str], str] = {}
        self._children: dict[str, set[str]] = {}
        self._configs: dict[str, QueueConfig] = {}
        self._schedules: dict[str, Schedule] = {}
        self._open = False

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    # ------------------------------------------------------------------ index upkeep
    def _queue(self, name: str) -> _QueueIndex:
        index = self._queues.get(name)
        if index is None:
            index = self._queues[name] = _QueueIndex()
        return index

    def _index_job(self, job: Job) -> None:
        """Register a job that is not indexed yet (insert, or rename into a new queue)."""
        q = self._queue(job.queue)
        q.counts[job.state] = q.counts.get(job.state, 0) + 1
        self._by_state.setdefault(job.state, {})[job.id] = None
        if job.unique_key is not None and job.state in UNFINISHED_STATES:
            self._unique.setdefault((job.queue, job.unique_key), job.id)
        self._schedule_heaps(job, q)

    def _unindex_job(self, job: Job) -> None:
        q = self._queue(job.queue)
        q.counts[job.state] -= 1
        self._by_state.get(job.state, {}).pop(job.id, None)
        if job.unique_key is not None and self._unique.get((job.queue, job.unique_key)) == job.id:
            del self._unique[(job.queue, job.unique_key)]
        q.ready_ids.discard(job.id)

    def _schedule_heaps(self, job: Job, q: _QueueIndex) -> None:
        if job.state == "waiting":
            if job.id not in q.ready_ids:
                q.ready_ids.add(job.id)
                heapq.heappush(q.ready, (job.sort_key, job.id))
        elif job.state == "delayed" and job.delay_until is not None:
            heapq.heappush(q.delayed, (job.delay_until, job.id))

    def _replace(self, old: Job, new: Job) -> None:
        """Store ``new`` in place of ``old`` (same id and queue), keeping every index right."""
        self._jobs[new.id] = new
        if old.state != new.state:
            q = self._queue(new.queue)
            q.counts[old.state] -= 1
            q.counts[new.state] = q.counts.get(new.state, 0) + 1
            self._by_state.get(old.state, {}).pop(new.id, None)
            self._by_state.setdefault(new.state, {})[new.id] = None
            self._schedule_heaps(new, q)
        elif new.state == "delayed" and new.delay_until != old.delay_until:
            self._schedule_heaps(new, self._queue(new.queue))
        if new.unique_key is not None:
            key = (new.queue, new.unique_key)
            if new.state in UNFINISHED_STATES:
                self._unique.setdefault(key, new.id)
            elif self._unique.get(key) == new.id:
                del self._unique[key]

    def _remove(self, job: Job) -> None:
        self._unindex_job(job)
        del self._jobs[job.id]
        for parent in job.depends_on:
            children = self._children.get(parent)
            if children is not None:
                children.discard(job.id)
                if not children:
                    del self._children[parent]

    # ------------------------------------------------------------------ jobs
    def _check_unique(self, jobs: Sequence[Job]) -> None:
        seen: dict[tuple[str, str], str] = {}
        for index, job in enumerate(jobs):
            if job.unique_key is None or job.state not in UNFINISHED_STATES:
                continue
            key = (job.queue, job.unique_key)
            holder = self._unique.get(key) or seen.get(key)
            if holder is not None:
                raise InsertConflict(index, job.unique_key, holder)
            seen[key] = job.id

    def _insert(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            stored = _copy(job)
            self._jobs[stored.id] = stored
            self._index_job(stored)
            for parent in stored.depends_on:
                self._children.setdefault(parent, set()).add(stored.id)

    async def insert_jobs(self, jobs: Sequence[Job], now: datetime) -> None:
        self._check_unique(jobs)
        self._insert(jobs)

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        jobs = self._jobs
        return [_copy(j) if (j := jobs.get(i)) is not None else None for i in ids]

    def _promote_due_into_ready(self, q: _QueueIndex, now: datetime) -> None:
        delayed = q.delayed
        jobs = self._jobs
        while delayed and delayed[0][0] <= now:
            due_at, job_id = heapq.heappop(delayed)
            job = jobs.get(job_id)
            if job is not None and job.state == "delayed" and job.delay_until == due_at and job_id not in q.ready_ids:
                q.ready_ids.add(job_id)
                heapq.heappush(q.ready, (job.sort_key, job_id))

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
        q = self._queues.get(queue)
        if q is None or n <= 0:
            return []
        self._promote_due_into_ready(q, now)
        group_active: dict[str, int] = {}
        if group_limit is not None:
            for active_id in self._by_state.get("active", {}):
                active = self._jobs[active_id]
                if active.queue == queue and active.group_id is not None:
                    group_active[active.group_id] = group_active.get(active.group_id, 0) + 1
        claimed: list[Job] = []
        skipped: list[tuple[bytes, str]] = []
        ready = q.ready
        lease_expires = now + timedelta(milliseconds=lease_ms)
        tokens = new_lease_tokens(min(n, len(ready)))
        while ready and len(claimed) < n:
            entry = heapq.heappop(ready)
            job_id = entry[1]
            job = self._jobs.get(job_id)
            if job is None or job.queue != queue:
                q.ready_ids.discard(job_id)
                continue
            state = job.state
            if state != "waiting" and not (
                state == "delayed" and job.delay_until is not None and job.delay_until <= now
            ):
                q.ready_ids.discard(job_id)
                continue
            if job.expires_at is not None and job.expires_at <= now:
                q.ready_ids.discard(job_id)
                continue
            if group_limit is not None and job.group_id is not None:
                if group_active.get(job.group_id, 0) >= group_limit:
                    skipped.append(entry)
                    continue
                group_active[job.group_id] = group_active.get(job.group_id, 0) + 1
            q.ready_ids.discard(job_id)
            new = _copy(
                job,
                state="active",
                started_at=now,
                updated_at=now,
                deliveries=job.deliveries + 1,
                worker_id=consumer_id,
                lease_token=tokens[len(claimed)],
                lease_ms=lease_ms,
                lease_expires_at=lease_expires,
                deadline_at=now + timedelta(milliseconds=job.timeout_ms) if job.timeout_ms else None,
                last_heartbeat=None,
                delay_until=None,
            )
            self._replace(job, new)
            claimed.append(_copy(new))
        for entry in skipped:
            heapq.heappush(ready, entry)
        return claimed

    async def complete(self, items: Sequence[CompleteItem], now: datetime) -> list[CompleteOutcome]:
        outcomes: list[CompleteOutcome] = []
        jobs = self._jobs
        for item in items:
            job = jobs.get(item.id)
            if job is None:
                outcomes.append(CompleteOutcome(id=item.id, outcome=NOT_FOUND))
                continue
            if job.state != "active":
                outcomes.append(CompleteOutcome(id=item.id, outcome=state_mismatch(job.state)))
                continue
            if (item.lease_token is not None and job.lease_token != item.lease_token) or (
                item.consumer_id is not None and job.worker_id != item.consumer_id
            ):
                outcomes.append(CompleteOutcome(id=item.id, outcome=LEASE_LOST))
                continue
            new = _copy(
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
            self._replace(job, new)
            skipped: list[tuple[int, str | None]] = []
            for index, spawn in enumerate(item.spawned):
                if spawn.unique_key is not None and spawn.state in UNFINISHED_STATES:
                    holder = self._unique.get((spawn.queue, spawn.unique_key))
                    if holder is not None:
                        skipped.append((index, holder))
                        continue
                self._insert([spawn])
            children = self._children.get(item.id)
            blocked = [c for c in children if jobs[c].state == "blocked"] if children else []
            outcomes.append(
                CompleteOutcome(id=item.id, outcome=OK, job=_copy(new), skipped=skipped, blocked_children=blocked)
            )
        return outcomes

    async def transition(self, changes: Sequence[Change], now: datetime) -> list[ChangeOutcome]:
        outcomes: list[ChangeOutcome] = []
        for change in changes:
            job = self._jobs.get(change.id)
            if job is None:
                outcomes.append(ChangeOutcome(id=change.id, outcome=NOT_FOUND))
                continue
            verdict = matches_expected(job, change)
            if verdict != OK:
                outcomes.append(ChangeOutcome(id=change.id, outcome=verdict))
                continue
            new = _copy(job, updated_at=now, **change.updates)
            self._replace(job, new)
            outcomes.append(ChangeOutcome(id=change.id, outcome=OK, job=_copy(new)))
        return outcomes

    async def promote_due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        promoted: list[tuple[str, str]] = []
        delayed_ids = self._by_state.get("delayed", {})
        due = [
            job
            for job_id in delayed_ids
            if (job := self._jobs[job_id]).delay_until is not None and job.delay_until <= now
        ]
        due.sort(key=lambda j: (j.delay_until, j.id))
        for job in due[:limit]:
            self._replace(job, _copy(job, state="waiting", delay_until=None, updated_at=now))
            promoted.append((job.id, job.queue))
        return promoted

    # ------------------------------------------------------------------ queries
    def _candidates(self, f: JobFilter) -> Iterable[Job]:
        jobs = self._jobs
        if f.ids is not None:
            return [j for i in f.ids if (j := jobs.get(i)) is not None]
        if f.children_of is not None:
            ids: set[str] = set()
            for parent in f.children_of:
                ids |= self._children.get(parent, set())
            return [jobs[i] for i in ids]
        if f.unique_key is not None and f.queue is not None:
            holder = self._unique.get((f.queue, f.unique_key))
            found = [j for j in jobs.values() if j.queue == f.queue and j.unique_key == f.unique_key]
            if holder is not None and holder not in {j.id for j in found}:
                found.append(jobs[holder])
            return found
        if f.states is not None:
            return [jobs[i] for s in f.states for i in self._by_state.get(s, {})]
        return list(jobs.values())

    def _matches(self, j: Job, f: JobFilter) -> bool:
        if f.queue is not None and j.queue != f.queue:
            return False
        if f.queues is not None and j.queue not in f.queues:
            return False
        if f.states is not None and j.state not in f.states:
            return False
        if f.flow_id is not None and j.flow_id != f.flow_id:
            return False
        if f.group_id is not None and j.group_id != f.group_id:
            return False
        if f.tags is not None and not set(f.tags).issubset(j.tags):
            return False
        if f.unique_key is not None and j.unique_key != f.unique_key:
            return False
        if f.remove_on_complete is not None and j.remove_on_complete != f.remove_on_complete:
            return False
        if f.delay_until_lte is not None and (j.delay_until is None or j.delay_until > f.delay_until_lte):
            return False
        if f.lease_expires_before is not None and (
            j.lease_expires_at is None or j.lease_expires_at >= f.lease_expires_before
        ):
            return False
        if f.deadline_before is not None and (j.deadline_at is None or j.deadline_at >= f.deadline_before):
            return False
        if f.expires_at_lte is not None and (j.expires_at is None or j.expires_at > f.expires_at_lte):
            return False
        if f.completed_before is not None and (j.completed_at is None or j.completed_at >= f.completed_before):
            return False
        if f.updated_before is not None and j.updated_at >= f.updated_before:
            return False
        if f.without_blocked_children:
            children = self._children.get(j.id)
            if children and any(self._jobs[c].state == "blocked" for c in children):
                return False
        return True

    @staticmethod
    def _order_key(job: Job, order: str) -> str:
        if order == "sort_key":
            return job.sort_key.hex() + ":" + job.id
        if order == "updated_desc":
            return job.updated_at.isoformat() + ":" + job.id
        if order == "created":
            return job.created_at.isoformat() + ":" + job.id
        return job.id

    async def find_jobs(self, filter: JobFilter, limit: int, cursor: str | None = None) -> tuple[list[Job], str | None]:
        matched = [j for j in self._candidates(filter) if self._matches(j, filter)]
        order = filter.order
        keyed = sorted(((self._order_key(j, order), j) for j in matched), key=lambda kj: kj[0])
        if order == "updated_desc":
            keyed.reverse()
            if cursor is not None:
                keyed = [kj for kj in keyed if kj[0] < cursor]
        elif cursor is not None:
            keyed = [kj for kj in keyed if kj[0] > cursor]
        page = keyed[:limit] if limit >= 0 else keyed
        next_cursor = page[-1][0] if page and len(keyed) > len(page) else None
        return [_copy(j) for _, j in page], next_cursor

    async def count_jobs(self, queues: Sequence[str] | None = None) -> dict[str, QueueCounts]:
        names = self._queues.keys() if queues is None else [q for q in queues if q in self._queues]
        result: dict[str, QueueCounts] = {}
        for name in names:
            counts = self._queues[name].counts
            if not any(counts.values()):
                continue
            values = {s: c for s, c in counts.items() if s in _COUNT_FIELDS}
            waiting = values.pop("waiting", 0) + counts.get("created", 0)
            result[name] = QueueCounts(waiting=waiting, **values)
        return result

    async def delete_jobs(
        self, ids: Sequence[str] | None = None, filter: JobFilter | None = None, limit: int = 1000
    ) -> list[Job]:
        if ids is not None:
            targets = [j for i in ids if (j := self._jobs.get(i)) is not None]
        elif filter is not None:
            targets = (await self.find_jobs(filter, limit))[0]
            targets = [self._jobs[j.id] for j in targets]
        else:
            return []
        for job in targets:
            self._remove(job)
        return targets

    async def rename_queue(self, old: str, new: str, now: datetime) -> int:
        moving = [j for j in self._jobs.values() if j.queue == old]
        for job in moving:
            self._unindex_job(job)
        self._queues.pop(old, None)
        for job in moving:
            moved = _copy(job, queue=new)
            self._jobs[job.id] = moved
            self._index_job(moved)
        config = self._configs.pop(old, None)
        if config is not None:
            self._configs[new] = _copy(config, name=new)
        return len(moving)

    async def queue_names(self) -> list[str]:
        with_jobs = {name for name, q in self._queues.items() if any(q.counts.values())}
        return sorted(with_jobs | self._configs.keys())

    # ------------------------------------------------------------------ queue configs
    async def get_queue_configs(self) -> dict[str, QueueConfig]:
        return {name: _copy(c) for name, c in self._configs.items()}

    async def put_queue_config(self, config: QueueConfig) -> None:
        self._configs[config.name] = _copy(config)

    async def delete_queue_config(self, name: str) -> None:
        self._configs.pop(name, None)

    # ------------------------------------------------------------------ schedules
    async def put_schedule(self, schedule: Schedule) -> None:
        self._schedules[schedule.name] = _copy(schedule)

    async def get_schedule(self, name: str) -> Schedule | None:
        found = self._schedules.get(name)
        return _copy(found) if found is not None else None

    async def list_schedules(self, active_only: bool = False) -> list[Schedule]:
        return [_copy(s) for name, s in sorted(self._schedules.items()) if not (active_only and s.paused)]

    async def delete_schedule(self, name: str) -> bool:
        return self._schedules.pop(name, None) is not None

    async def fire_schedule(
        self,
        name: str,
        expected_next_run_at: datetime | None,
        updates: dict[str, Any],
        jobs: Sequence[Job],
        now: datetime,
    ) -> bool:
        schedule = self._schedules.get(name)
        if schedule is None or schedule.next_run_at != expected_next_run_at:
            return False
        self._check_unique(jobs)
        self._insert(jobs)
        self._schedules[name] = _copy(schedule, updated_at=now, **updates)
        return True


def create_memory_storage(url: str, options: Mapping[str, Any]) -> MemoryStorage:
    return MemoryStorage(url, options)


MEMORY_SPEC = StorageSpec(
    name="memory",
    schemes=("memory",),
    description="In-process storage for tests and ephemeral use (not durable)",
    capabilities=MemoryStorage.capabilities,
    factory=create_memory_storage,
)


@hookimpl
def rustqueue_storage_backends() -> StorageSpec:
    return MEMORY_SPEC
