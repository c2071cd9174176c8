"""The storage plugin contract (SEMANTICS §5).

Storage owns atomic, batch-shaped reads and compare-and-set writes; the engine owns the state machine.
Storage never computes backoff, dependencies, priorities or schedules: it sorts claimable jobs by
``Job.sort_key`` (bytewise ascending), filters by fields, and applies the changes the engine describes.
Every method takes ``now`` from the engine and never reads its own clock.

A storage backend is returned by a plugin's ``rustqueue_storage_backends`` hook as a ``StorageSpec``
whose ``factory(url, options)`` builds an object satisfying :class:`Storage`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from rustqueue_core.models import Capabilities, Job, QueueConfig, QueueCounts, Schedule

#: States that hold a unique key and count as unfinished (SEMANTICS §0.7).
UNFINISHED_STATES = frozenset({"waiting", "delayed", "blocked", "active"})
TERMINAL_STATES = frozenset({"completed", "dlq", "cancelled"})
ALL_STATES = ("created", "waiting", "delayed", "active", "completed", "failed", "dlq", "cancelled", "blocked")

# Outcomes of one compare-and-set item. ``state:<s>`` reports the current state on a mismatch.
OK = "ok"
NOT_FOUND = "not_found"
LEASE_LOST = "lease_lost"


def state_mismatch(state: str) -> str:
    return f"state:{state}"


def new_lease_token() -> str:
    """A fresh 128-bit random lease credential."""
    return secrets.token_hex(16)


def new_lease_tokens(n: int) -> list[str]:
    """``n`` fresh lease credentials like :func:`new_lease_token`, from one read of the OS's random
    source (a batch claim would otherwise make one system call per job)."""
    pool = secrets.token_hex(16 * n)
    return [pool[i : i + 32] for i in range(0, 32 * n, 32)]


class Change(msgspec.Struct, kw_only=True):
    """One compare-and-set: if the job is in one of ``expected`` states (and, when given, its
    ``lease_token`` equals ``lease_token`` and its ``worker_id`` equals ``consumer_id``), apply
    ``updates`` (field name → new value; ``updated_at`` is set to ``now`` by storage)."""

    id: str
    expected: frozenset[str]
    updates: dict[str, Any]
    lease_token: str | None = None
    consumer_id: str | None = None


class CompleteItem(msgspec.Struct, kw_only=True):
    """One ack: active (+credential) → completed with ``result``; ``spawned`` jobs (follow-ups) are
    inserted in the same transaction when the item succeeds. A spawn whose unique key is held is
    skipped and reported in ``CompleteOutcome.skipped``."""

    id: str
    result: Any = None
    lease_token: str | None = None
    consumer_id: str | None = None
    spawned: list[Job] = msgspec.field(default_factory=list)


class CompleteOutcome(msgspec.Struct, kw_only=True):
    id: str
    outcome: str
    #: The job as completed (``None`` unless ``outcome == "ok"``).
    job: Job | None = None
    #: Indexes into ``spawned`` that were skipped for a held unique key, with the holder id.
    skipped: list[tuple[int, str | None]] = msgspec.field(default_factory=list)
    #: Ids of ``blocked`` jobs that depend on this one, read in the same transaction; ``None`` when the
    #: backend does not report them (the engine then looks them up after commit).
    blocked_children: list[str] | None = None


class ChangeOutcome(msgspec.Struct, kw_only=True):
    id: str
    outcome: str
    #: The job after the change (``None`` unless ``outcome == "ok"``).
    job: Job | None = None


class JobFilter(msgspec.Struct, kw_only=True):
    """Conjunction of conditions; ``None`` means "any". Time bounds are exclusive upper bounds
    except ``delay_until_lte`` and ``expires_at_lte``."""

    ids: list[str] | None = None
    queue: str | None = None
    queues: list[str] | None = None
    states: list[str] | None = None
    flow_id: str | None = None
    group_id: str | None = None
    tags: list[str] | None = None
    #: jobs whose ``depends_on`` contains any of these ids (indexed lookup)
    children_of: list[str] | None = None
    unique_key: str | None = None
    delay_until_lte: datetime | None = None
    lease_expires_before: datetime | None = None
    deadline_before: datetime | None = None
    expires_at_lte: datetime | None = None
    completed_before: datetime | None = None
    updated_before: datetime | None = None
    #: with the two bounds above: only jobs that no blocked job depends on (retention, SEMANTICS §2.10.7)
    without_blocked_children: bool = False
    #: only jobs whose ``remove_on_complete`` flag equals this (deferred deletions, SEMANTICS §2.6)
    remove_on_complete: bool | None = None
    #: sort order of results: "id" (stable paging), "sort_key" (claim order), "updated_desc" (DLQ listing)
    order: str = "id"


class InsertConflict(Exception):
    """Raised by ``insert_jobs`` when a unique key is held: nothing was written."""

    def __init__(self, index: int, key: str, holder_id: str | None) -> None:
        super().__init__(f"unique key {key!r} of item {index} is held by {holder_id}")
        self.index = index
        self.key = key
        self.holder_id = holder_id


@runtime_checkable
class Storage(Protocol):
    """What every storage backend implements. All methods are coroutines unless noted.

    Atomicity: each method is one transaction. Batch methods report one outcome per item and
    never let one item's failure undo another's success (except ``insert_jobs``: all or nothing).
    """

    capabilities: Capabilities

    async def open(self) -> None:
        """Open (and migrate). Idempotent."""

    async def close(self) -> None:
        """Flush everything acknowledged and release resources. Idempotent."""

    # ---- jobs
    async def insert_jobs(self, jobs: Sequence[Job], now: datetime) -> None:
        """Insert all or nothing. Enforce unique ``(queue, unique_key)`` among unfinished jobs against
        storage and within the batch; on conflict write nothing and raise :class:`InsertConflict`."""

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        """Jobs in input order, ``None`` for missing ids."""

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
        """Take up to ``n`` claimable jobs of ``queue`` in ``sort_key`` order (SEMANTICS §2.4).

        Claimable: ``waiting`` (plus ``delayed`` with ``delay_until <= now`` when the backend declares
        ``claims_due_delayed``), ``expires_at`` is None or ``> now``, and — with ``group_limit`` — the
        job's group has fewer than ``group_limit`` active jobs counting this claim's picks.
        Each taken job becomes ``active`` with ``started_at=now``, ``deliveries+1``,
        ``worker_id=consumer_id``, a fresh ``lease_token`` (:func:`new_lease_token`), ``lease_ms``,
        ``lease_expires_at=now+lease_ms``, ``deadline_at=now+timeout_ms`` (None without a timeout),
        ``last_heartbeat=None``, ``delay_until=None``, ``updated_at=now``. Returns the updated jobs."""
        ...

    async def complete(self, items: Sequence[CompleteItem], now: datetime) -> list[CompleteOutcome]:
        """Per item compare-and-set active (+credential) → completed (``completed_at=now``, result,
        lease fields, ``deadline_at`` and ``last_heartbeat`` cleared), spawned jobs inserted in the
        same transaction. One transaction for the whole call."""
        ...

    async def transition(self, changes: Sequence[Change], now: datetime) -> list[ChangeOutcome]:
        """Per-change compare-and-set, all in one transaction; outcome per change."""
        ...

    async def promote_due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """delayed with ``delay_until <= now`` → waiting (``delay_until=None``), set-based.
        Returns ``(id, queue)`` of promoted jobs."""
        ...

    async def find_jobs(self, filter: JobFilter, limit: int, cursor: str | None = None) -> tuple[list[Job], str | None]:
        """Jobs matching ``filter`` in ``filter.order``; returns the page and the next cursor (or None)."""
        ...

    async def count_jobs(self, queues: Sequence[str] | None = None) -> dict[str, QueueCounts]:
        """Counts per queue, every state, in one call. Only queues with jobs appear."""
        ...

    async def delete_jobs(
        self, ids: Sequence[str] | None = None, filter: JobFilter | None = None, limit: int = 1000
    ) -> list[Job]:
        """Delete by ids or by filter (at most ``limit``); idempotent. Returns the deleted jobs."""
        ...

    async def rename_queue(self, old: str, new: str, now: datetime) -> int:
        """Atomically move config and every job (any state, unique keys) from ``old`` to ``new``.
        Returns the number of jobs moved."""
        ...

    async def queue_names(self) -> list[str]:
        """Names of every queue that has a stored config or at least one job, sorted."""
        ...

    # ---- queue configs
    async def get_queue_configs(self) -> dict[str, QueueConfig]: ...

    async def put_queue_config(self, config: QueueConfig) -> None: ...

    async def delete_queue_config(self, name: str) -> None: ...

    # ---- schedules
    async def put_schedule(self, schedule: Schedule) -> None: ...

    async def get_schedule(self, name: str) -> Schedule | None: ...

    async def list_schedules(self, active_only: bool = False) -> list[Schedule]:
        """Sorted by name; ``active_only`` leaves out paused schedules."""
        ...

    async def delete_schedule(self, name: str) -> bool: ...

    async def fire_schedule(
        self,
        name: str,
        expected_next_run_at: datetime | None,
        updates: dict[str, Any],
        jobs: Sequence[Job],
        now: datetime,
    ) -> bool:
        """In one transaction: if the schedule's ``next_run_at`` still equals ``expected_next_run_at``,
        apply ``updates`` to it and insert ``jobs`` (unique keys enforced: a conflict raises
        :class:`InsertConflict` and writes nothing). Returns False when another instance won the slot."""
        ...


class OptionalStorage(Protocol):
    """Optional methods, present per capability. The engine checks with ``hasattr``."""

    async def wait(self, queues: Sequence[str], timeout: float) -> bool:
        """Wait until another process may have made a job claimable (``wakeups``)."""
        ...

    async def shed(self) -> None:
        """Drop caches and flush write-back state now (memory pressure)."""
        ...


def matches_expected(job: Job, change: Change) -> str:
    """Reference compare-and-set check shared by in-memory style backends."""
    if job.state not in change.expected:
        return state_mismatch(job.state)
    if change.lease_token is not None and job.lease_token != change.lease_token:
        return LEASE_LOST
    if change.consumer_id is not None and job.worker_id != change.consumer_id:
        return LEASE_LOST
    return OK
