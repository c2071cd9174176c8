"""msgspec models shared by the engine, storage plugins and transports.

Timestamps are aware UTC ``datetime`` values (µs precision). Durations are integer milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from rustqueue_core.storage import Storage

JobStateName = Literal["created", "waiting", "delayed", "active", "completed", "failed", "dlq", "cancelled", "blocked"]
BackoffName = Literal["fixed", "linear", "exponential"]
OrderingName = Literal["max_first", "min_first", "fifo", "lifo"]
PriorityKind = Literal["numeric", "text"]
Priority = int | str

#: Rank of a priority inside its queue: an int for numeric queues, a str for text queues.


class LogEntry(msgspec.Struct, kw_only=True):
    timestamp: datetime
    message: str


class Job(msgspec.Struct, kw_only=True):
    """A stored job. Field order is the wire order of the original's Job JSON."""

    id: str
    custom_id: str | None = None
    name: str
    queue: str
    data: Any = msgspec.field(default_factory=dict)
    result: Any = None
    state: str = "waiting"
    progress: int | None = None
    logs: list[LogEntry] = msgspec.field(default_factory=list)
    priority: Priority = 0
    delay_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    max_attempts: int = 3
    attempt: int = 0
    backoff: str = "exponential"
    backoff_delay_ms: int = 1000
    last_error: str | None = None
    ttl_ms: int | None = None
    timeout_ms: int | None = None
    unique_key: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    group_id: str | None = None
    metadata: Any = None
    depends_on: list[str] = msgspec.field(default_factory=list)
    flow_id: str | None = None
    lifo: bool = False
    remove_on_complete: bool = False
    remove_on_fail: bool = False
    worker_id: str | None = None
    last_heartbeat: datetime | None = None
    # --- fields beyond the original's 33 ---
    deliveries: int = 0
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    lease_ms: int | None = None
    # --- internal: never on the wire ---
    expires_at: datetime | None = None
    deadline_at: datetime | None = None
    sort_key: bytes = b""


#: Fields that never leave the process (SEMANTICS §1.1).
INTERNAL_JOB_FIELDS = frozenset({"expires_at", "deadline_at", "sort_key", "lease_token"})
#: All Job field names in order.
JOB_FIELDS: tuple[str, ...] = Job.__struct_fields__


#: A shallow copy of a Job: msgspec's C ``__copy__`` (``copy.copy`` adds a Python-level dispatch).
copy_job: Callable[[Job], Job] = Job.__copy__  # type: ignore[attr-defined]


class JobOptions(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Push options. ``None`` means "use the default" (SEMANTICS §2.3 step 7)."""

    priority: Priority | None = None
    delay_ms: int | None = None
    max_attempts: int | None = None
    backoff: str | None = None
    backoff_delay_ms: int | None = None
    ttl_ms: int | None = None
    timeout_ms: int | None = None
    unique_key: str | None = None
    tags: list[str] | None = None
    group_id: str | None = None
    lifo: bool | None = None
    remove_on_complete: bool | None = None
    remove_on_fail: bool | None = None
    custom_id: str | None = None
    metadata: Any = None
    depends_on: list[str] | None = None
    flow_id: str | None = None


JOB_OPTION_KEYS: tuple[str, ...] = JobOptions.__struct_fields__


class NewJob(msgspec.Struct, kw_only=True):
    """One item of a push call, before validation. ``before_push`` hooks may amend ``options.metadata``."""

    queue: str
    name: str
    data: Any = msgspec.field(default_factory=dict)
    options: JobOptions = msgspec.field(default_factory=JobOptions)


class JobDefaults(msgspec.Struct, kw_only=True, omit_defaults=True):
    max_attempts: int | None = None
    backoff: str | None = None
    backoff_delay_ms: int | None = None
    timeout_ms: int | None = None
    ttl_ms: int | None = None
    remove_on_complete: bool | None = None
    remove_on_fail: bool | None = None


class QueueConfig(msgspec.Struct, kw_only=True):
    """Persisted configuration of one queue (SEMANTICS §1.4)."""

    name: str
    ordering: str = "max_first"
    priority_kind: str = "numeric"
    allow_duplicates: bool = True
    paused: bool = False
    consume_paused: bool = False
    lease_ms: int | None = None
    rate_limit_per_second: float | None = None
    rate_limit_burst: int | None = None
    group_concurrency: int | None = None
    job_defaults: JobDefaults = msgspec.field(default_factory=JobDefaults)
    max_retries: int | None = None
    created_at: datetime | None = None


class QueueCounts(msgspec.Struct, kw_only=True):
    waiting: int = 0
    active: int = 0
    delayed: int = 0
    completed: int = 0
    failed: int = 0
    dlq: int = 0
    blocked: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return (
            self.waiting
            + self.active
            + self.delayed
            + self.completed
            + self.failed
            + self.dlq
            + self.blocked
            + self.cancelled
        )


class QueueInfo(msgspec.Struct, kw_only=True):
    name: str
    counts: QueueCounts
    paused: bool = False
    consume_paused: bool = False
    config: QueueConfig | None = None


class QueueStats(msgspec.Struct, kw_only=True):
    """Counts plus this instance's counters and rates (SEMANTICS §4.3)."""

    name: str
    counts: QueueCounts
    pending: int
    locked: int
    published: int = 0
    claimed: int = 0
    acked: int = 0
    nacked: int = 0
    failed: int = 0
    dead: int = 0
    rate_limited: int = 0
    publish_rate_per_sec: float = 0.0
    ack_rate_per_sec: float = 0.0
    paused: bool = False
    consume_paused: bool = False


class Schedule(msgspec.Struct, kw_only=True):
    name: str
    queue: str
    job_name: str
    job_data: Any = None
    job_options: JobOptions | None = None
    cron_expr: str | None = None
    every_ms: int | None = None
    timezone: str | None = None
    max_executions: int | None = None
    execution_count: int = 0
    paused: bool = False
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    run_immediately: bool = True
    last_error: str | None = None


class JobEvent(msgspec.Struct, kw_only=True):
    """One engine event, delivered in batches to ``rustqueue_jobs_changed`` after commit."""

    kind: str
    job_id: str
    queue: str
    timestamp: datetime
    state: str | None = None
    attempt: int | None = None
    reason: str | None = None
    name: str | None = None
    #: The job as committed, on ``job.completed`` and ``job.dlq`` (so archivers need not read it back,
    #: even when ``remove_on_*`` deletes it right after). In-process only: never put on the wire.
    job: Job | None = None


class FailResult(msgspec.Struct, kw_only=True):
    will_retry: bool
    next_attempt_at: datetime | None = None
    state: str = "delayed"


class ItemResult(msgspec.Struct, kw_only=True):
    """Outcome of one item of a batch operation (ack_batch, heartbeat batch, nack_batch)."""

    id: str
    ok: bool
    error_code: str | None = None
    error_message: str | None = None


class BatchResult(msgspec.Struct, kw_only=True):
    ok: int
    failed: int
    results: list[ItemResult]


class NackBatchResult(msgspec.Struct, kw_only=True):
    requeued: int
    dead: int
    failed: int
    results: list[ItemResult]


class FlowInfo(msgspec.Struct, kw_only=True):
    flow_id: str
    jobs: list[Job]
    summary: dict[str, int]


class Explanation(msgspec.Struct, kw_only=True):
    code: str
    detail: str


class HealthCheck(msgspec.Struct, kw_only=True):
    component: str
    state: Literal["ok", "starting", "degraded", "down"] = "ok"
    detail: str | None = None


class Health(msgspec.Struct, kw_only=True):
    status: str
    state: str
    version: str
    uptime_seconds: int
    checks: list[HealthCheck] = msgspec.field(default_factory=list)
    memory_level: str = "normal"


class WorkerStats(msgspec.Struct, kw_only=True):
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    released: int = 0


# --------------------------------------------------------------------------- plugin descriptors


class Capabilities(msgspec.Struct, kw_only=True, frozen=True):
    """What a storage backend guarantees (SEMANTICS §5.4)."""

    durable: bool = False
    power_safe: bool = False
    write_back: bool = False
    loss_window_ms: int = 0
    multi_process: bool = False
    multi_node: bool = False
    wakeups: bool = False
    claims_due_delayed: bool = False
    group_limits: bool = False
    shared_rate_limits: bool = False
    transactional_enqueue: bool = False
    #: Write calls take effect in the order they were started, even when the caller starts several before
    #: awaiting the first: a transport may then run consecutive commands of one connection together.
    ordered_writes: bool = False
    max_batch: int = 10_000


class StorageSpec(msgspec.Struct, kw_only=True, frozen=True):
    """Returned by ``rustqueue_storage_backends``: one storage backend a plugin offers."""

    name: str
    schemes: tuple[str, ...]
    description: str
    capabilities: Capabilities
    factory: Callable[[str, Mapping[str, Any]], Storage]


class TransportSpec(msgspec.Struct, kw_only=True, frozen=True):
    """Returned by ``rustqueue_transports``: ``factory(engine, config)`` gives an async context manager
    that serves while entered."""

    name: str
    default_bind: str
    description: str
    factory: Callable[..., Any]


class Credentials(msgspec.Struct, kw_only=True):
    transport: str
    token: str | None = None
    scheme: str | None = None
    header: str | None = None
    peer: str | None = None
    #: Raw ``X-Forwarded-For`` header of an HTTP request; honoured only for peers the auth plugin trusts.
    forwarded_for: str | None = None


class Principal(msgspec.Struct, kw_only=True):
    name: str
    roles: tuple[str, ...] = ()
    anonymous: bool = False


ANONYMOUS = Principal(name="anonymous", anonymous=True)


class WorkerInfo(msgspec.Struct, kw_only=True):
    queue: str
    consumer_id: str
    concurrency: int


def job_from_dict(value: Mapping[str, Any]) -> Job:
    return msgspec.convert(value, Job)


def structs_to_builtins(value: Sequence[msgspec.Struct]) -> list[Any]:
    return [msgspec.to_builtins(v) for v in value]
