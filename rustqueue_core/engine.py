"""The engine: batch-shaped push / claim / ack / fail, flows, schedules, queue admin, housekeeping.

INTERFACE STUB — the public signatures below are the contract transports and the worker runtime code
against. Bodies are being implemented; keep every signature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rustqueue_core.models import (
    BatchResult,
    Explanation,
    FailResult,
    FlowInfo,
    Health,
    Job,
    JobEvent,
    NackBatchResult,
    NewJob,
    Principal,
    QueueConfig,
    QueueCounts,
    QueueInfo,
    QueueStats,
    Schedule,
)

if TYPE_CHECKING:
    from rustqueue_core.clock import Clock
    from rustqueue_core.plugins import PluginHost
    from rustqueue_core.settings import EngineSettings
    from rustqueue_core.storage import Storage

_UNSET: Any = object()


class RustQueue:
    """One engine instance over one storage. Build with ``RustQueue.memory()``, ``RustQueue.sqlite(path)``
    or ``RustQueue.open(url)`` (builders), then ``await builder.build()``.

    ``state`` is ``starting`` → ``ready`` → ``draining`` → ``closed``.
    """

    storage: Storage
    host: PluginHost
    clock: Clock
    settings: EngineSettings
    state: str
    version: str

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> RustQueue:
        """Open storage, apply queue config, one housekeeping pass, start housekeeping; → ready."""
        raise NotImplementedError

    async def close(self, grace: float = 30.0) -> None:
        """Drain workers, stop housekeeping, flush and close storage; → closed. Idempotent."""
        raise NotImplementedError

    async def __aenter__(self) -> RustQueue:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def add_listener(self, callback: Callable[[Sequence[JobEvent]], None]) -> Callable[[], None]:
        """In-process event consumer called with each committed batch (like ``rustqueue_jobs_changed``).
        Returns a function that removes it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ push
    async def push(
        self, queue: str, name: str, data: Any = _UNSET, *, principal: Principal | None = None, **options: Any
    ) -> str:
        """Push one job; keywords are ``JobOptions`` keys. Returns its id."""
        raise NotImplementedError

    async def push_batch(
        self,
        queue: str | None,
        jobs: Sequence[NewJob | Mapping[str, Any]],
        *,
        principal: Principal | None = None,
    ) -> list[str]:
        """Push many jobs atomically (one storage transaction). A mapping item is
        ``{"name", "data"?, "options"?: {...}}`` or flattened ``{"name", "data"?, **options}``; ``queue``
        fills items without their own. Returns ids in input order; ``[]`` for an empty batch."""
        raise NotImplementedError

    async def push_jobs(self, jobs: Sequence[NewJob], *, principal: Principal | None = None) -> list[str]:
        """The one push pipeline (SEMANTICS §2.3) every path ends in."""
        raise NotImplementedError

    # ------------------------------------------------------------------ delivery
    async def claim(
        self,
        queue: str,
        n: int = 1,
        *,
        consumer_id: str | None = None,
        lease_ms: int | None = None,
        wait: float | None = None,
    ) -> list[Job]:
        raise NotImplementedError

    pull = claim

    async def ack(
        self, job_id: str, result: Any = None, *, token: str | None = None, consumer_id: str | None = None
    ) -> Job:
        raise NotImplementedError

    async def ack_batch(self, items: Sequence[tuple[str, Any] | str | Mapping[str, Any]]) -> BatchResult:
        """Items are ids, ``(id, result)`` pairs or ``{"id", "result"?, "token"?, "consumer_id"?}``."""
        raise NotImplementedError

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
        raise NotImplementedError

    async def nack(
        self,
        job_id: str,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
        requeue: bool = True,
        reason: str | None = None,
    ) -> FailResult:
        raise NotImplementedError

    async def nack_batch(
        self,
        ids: Sequence[str],
        *,
        consumer_id: str | None = None,
        requeue: bool = True,
        reason: str | None = None,
    ) -> NackBatchResult:
        raise NotImplementedError

    async def release(
        self, ids: str | Sequence[str], *, token: str | None = None, consumer_id: str | None = None
    ) -> BatchResult:
        raise NotImplementedError

    async def heartbeat(
        self, ids: str | Sequence[str], *, token: str | None = None, consumer_id: str | None = None
    ) -> BatchResult:
        """One batched call; ``tokens`` for many ids are given as ``{"id", "token"}`` mappings."""
        raise NotImplementedError

    async def renew(
        self, job_id: str, lease_ms: int | None = None, *, token: str | None = None, consumer_id: str | None = None
    ) -> Job:
        raise NotImplementedError

    async def progress(
        self,
        job_id: str,
        value: int,
        message: str | None = None,
        *,
        token: str | None = None,
        consumer_id: str | None = None,
    ) -> None:
        raise NotImplementedError

    async def cancel(self, job_id: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ inspection and admin
    async def get_job(self, job_id: str) -> Job | None:
        raise NotImplementedError

    async def get_jobs(self, ids: Sequence[str]) -> list[Job | None]:
        raise NotImplementedError

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
        raise NotImplementedError

    async def dlq(self, queue: str, limit: int = 50) -> list[Job]:
        raise NotImplementedError

    async def flow(self, flow_id: str) -> FlowInfo:
        raise NotImplementedError

    async def explain(self, job_id: str) -> list[Explanation]:
        raise NotImplementedError

    async def retry(self, ids: str | Sequence[str]) -> BatchResult:
        raise NotImplementedError

    async def promote(self, ids: str | Sequence[str]) -> BatchResult:
        raise NotImplementedError

    async def delete_jobs(self, ids: str | Sequence[str]) -> int:
        raise NotImplementedError

    async def queues(self) -> list[QueueInfo]:
        raise NotImplementedError

    async def counts(self, queue: str) -> QueueCounts:
        raise NotImplementedError

    async def stats(self, queue: str | None = None) -> list[QueueStats]:
        raise NotImplementedError

    async def create_queue(self, name: str, **config: Any) -> QueueConfig:
        raise NotImplementedError

    async def configure_queue(self, name: str, **changes: Any) -> QueueConfig:
        raise NotImplementedError

    async def get_queue_config(self, name: str) -> QueueConfig:
        """Stored config, or the defaults for a queue without one."""
        raise NotImplementedError

    async def rename_queue(self, old: str, new: str) -> int:
        raise NotImplementedError

    async def purge_queue(self, name: str, include_finished: bool = False) -> int:
        raise NotImplementedError

    async def delete_queue(self, name: str) -> int:
        raise NotImplementedError

    async def purge_all(self) -> int:
        raise NotImplementedError

    async def delete_all(self) -> int:
        raise NotImplementedError

    async def pause_queue(self, name: str, *, consume: bool = False) -> None:
        raise NotImplementedError

    async def resume_queue(self, name: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ schedules
    async def create_schedule(self, schedule: Mapping[str, Any] | None = None, **fields: Any) -> Schedule:
        """Fields: name, queue, job_name, job_data, job_options, cron_expr | every_ms, timezone,
        max_executions, run_immediately. Upsert (SEMANTICS §3.2 rule 1)."""
        raise NotImplementedError

    async def get_schedule(self, name: str) -> Schedule:
        raise NotImplementedError

    async def list_schedules(self) -> list[Schedule]:
        raise NotImplementedError

    async def delete_schedule(self, name: str) -> bool:
        raise NotImplementedError

    async def pause_schedule(self, name: str) -> Schedule:
        raise NotImplementedError

    async def resume_schedule(self, name: str) -> Schedule:
        raise NotImplementedError

    # ------------------------------------------------------------------ housekeeping, health
    async def tick(self) -> None:
        """Run one housekeeping pass now (SEMANTICS §3.1)."""
        raise NotImplementedError

    async def health(self) -> Health:
        raise NotImplementedError


Engine = RustQueue
