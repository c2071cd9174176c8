"""SQLite schema and the Job ↔ row codec of the SQLite backend.

Timestamps are integer microseconds since the Unix epoch (they sort chronologically). JSON values
(data, result, logs, metadata, depends_on) are msgspec-encoded bytes (tags: JSON text, for
``json_each``); empty lists and ``None``
results/metadata are stored as NULL so the common row stays small. Priorities are stored natively
(INTEGER for 64-bit ints, TEXT for text priorities) and as JSON bytes for ints beyond 64 bits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from rustqueue_core.models import Job, LogEntry, QueueConfig, Schedule

SCHEMA_VERSION = 3

#: The condition of the ``jobs_state`` index. Waiting jobs (the bulk of a backlog, and the rows that
#: push and claim touch) are left out of it: ``jobs_claim`` serves them, so a push or a claim updates
#: one index fewer. A query can use ``jobs_state`` only when its WHERE clause carries this exact term
#: (SQLite matches partial-index conditions textually), so queries on other states add it.
NOT_WAITING = "state <> 'waiting'"

#: Indexes whose definition changed between schema versions: dropped, then re-created by the DDL.
CHANGED_INDEXES = {2: ("jobs_claim", "jobs_state")}

#: Column order of the ``jobs`` table: Job fields in declaration order.
JOB_COLUMNS: tuple[str, ...] = Job.__struct_fields__
COLUMN_LIST = ", ".join(JOB_COLUMNS)
COLUMN_INDEX = {name: i for i, name in enumerate(JOB_COLUMNS)}

#: Encoded payloads longer than this many bytes live in ``job_payloads``, out of the job row (whose
#: ``data`` is then NULL). SQLite rewrites a whole row, overflow pages included, on every UPDATE: a large
#: payload inline would be written again by the claim, the ack and every other state change. Small
#: payloads stay inline, where reading them costs nothing extra.
INLINE_DATA_MAX = 512
#: :data:`COLUMN_LIST` for reading rows (SELECT and RETURNING): ``data`` from the row or its payload row.
READ_COLUMN_LIST = ", ".join(
    "coalesce(data, (SELECT p.data FROM job_payloads p WHERE p.id = jobs.id))" if name == "data" else name
    for name in JOB_COLUMNS
)

UNFINISHED_SQL = "('waiting', 'delayed', 'blocked', 'active')"

DDL = f"""
CREATE TABLE IF NOT EXISTS rq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    custom_id TEXT,
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    data BLOB,
    result BLOB,
    state TEXT NOT NULL,
    progress INTEGER,
    logs BLOB,
    priority ANY,
    delay_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
    max_attempts INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    backoff TEXT NOT NULL,
    backoff_delay_ms INTEGER NOT NULL,
    last_error TEXT,
    ttl_ms INTEGER,
    timeout_ms INTEGER,
    unique_key TEXT,
    tags TEXT,
    group_id TEXT,
    metadata BLOB,
    depends_on BLOB,
    flow_id TEXT,
    lifo INTEGER NOT NULL,
    remove_on_complete INTEGER NOT NULL,
    remove_on_fail INTEGER NOT NULL,
    worker_id TEXT,
    last_heartbeat INTEGER,
    deliveries INTEGER NOT NULL,
    lease_token TEXT,
    lease_expires_at INTEGER,
    lease_ms INTEGER,
    expires_at INTEGER,
    deadline_at INTEGER,
    sort_key BLOB NOT NULL,
    -- bumped by every UPDATE: validates the writer's cache of active jobs (see sqlite_ops.ActiveCache)
    rev INTEGER NOT NULL DEFAULT 0,
    -- the time that matters in the job's state: one index on (state, due_at) serves lease expiry,
    -- promotion of delayed jobs, retention scans, DLQ listing and counts
    due_at INTEGER GENERATED ALWAYS AS (CASE state
        WHEN 'active' THEN lease_expires_at WHEN 'delayed' THEN delay_until
        WHEN 'completed' THEN completed_at WHEN 'dlq' THEN updated_at WHEN 'cancelled' THEN updated_at
        END) VIRTUAL
);
-- claim order: waiting jobs of a queue by sort_key, with expires_at and state (constant here, but SQLite 3.40
-- does not count a partial index as covering without it) let the claim read only the index
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (queue, sort_key, expires_at, state) WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, due_at, queue) WHERE {NOT_WAITING};
CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN {UNFINISHED_SQL};
CREATE INDEX IF NOT EXISTS jobs_flow ON jobs (flow_id) WHERE flow_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_active_group ON jobs (queue, group_id)
    WHERE state = 'active' AND group_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_deadline ON jobs (deadline_at)
    WHERE state = 'active' AND deadline_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_remove_on_complete ON jobs (completed_at)
    WHERE state = 'completed' AND remove_on_complete = 1;
CREATE INDEX IF NOT EXISTS jobs_expires ON jobs (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('waiting', 'delayed', 'blocked');
CREATE TABLE IF NOT EXISTS job_deps (
    parent_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    PRIMARY KEY (parent_id, child_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_deps_child ON job_deps (child_id);
CREATE TABLE IF NOT EXISTS job_payloads (id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_configs (name TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL,
    next_run_at INTEGER,
    body BLOB NOT NULL
);
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

encode_json: Callable[[Any], bytes] = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode
decode_json: Callable[[bytes], Any] = _decode_any
_decode_strs = msgspec.json.Decoder(list[str]).decode
_decode_logs = msgspec.json.Decoder(list[LogEntry]).decode
decode_config = msgspec.json.Decoder(QueueConfig).decode
decode_schedule = msgspec.json.Decoder(Schedule).decode


def to_us(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def opt_us(when: datetime | None) -> int | None:
    return None if when is None else to_us(when)


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def opt_dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


_dt_cache: dict[int, datetime] = {}


def _dt(value: int) -> datetime:
    """µs → datetime, memoised: rows of one batch share most of their timestamps (``now``, leases)."""
    found = _dt_cache.get(value)
    if found is None:
        if len(_dt_cache) >= 4096:
            _dt_cache.clear()
        found = _dt_cache[value] = _EPOCH + timedelta(microseconds=value)
    return found


def encode_priority(priority: int | str) -> int | str | bytes:
    if isinstance(priority, int) and not _INT64_MIN <= priority <= _INT64_MAX:
        return encode_json(priority)
    return priority


def decode_priority(value: Any) -> int | str:
    if type(value) is bytes:
        decoded: int | str = _decode_any(value)
        return decoded
    return value  # type: ignore[no-any-return]


def _opt_json(value: Any) -> bytes | None:
    return None if value is None else encode_json(value)


def _opt_list(value: list[Any]) -> bytes | None:
    return encode_json(value) if value else None


_astuple = msgspec.structs.astuple
_DATA, _RESULT, _LOGS, _PRIORITY, _TAGS, _METADATA, _DEPENDS_ON = (
    JOB_COLUMNS.index(name) for name in ("data", "result", "logs", "priority", "tags", "metadata", "depends_on")
)
_TIME_COLUMNS = tuple(
    JOB_COLUMNS.index(name)
    for name in (
        "delay_until",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
        "last_heartbeat",
        "lease_expires_at",
        "expires_at",
        "deadline_at",
    )
)
_FLAG_COLUMNS = tuple(JOB_COLUMNS.index(name) for name in ("lifo", "remove_on_complete", "remove_on_fail"))


def job_row_values(job: Job) -> list[Any]:
    """A Job's column values in :data:`JOB_COLUMNS` order, encoded for SQLite (see the module doc).

    Starts from the struct's own field tuple (one C call) and re-encodes only the columns whose SQLite
    form differs; the timestamps of one job are usually the same object (``now``), converted once."""
    row = list(_astuple(job))
    row[_DATA] = encode_json(row[_DATA])
    if row[_RESULT] is not None:
        row[_RESULT] = encode_json(row[_RESULT])
    row[_LOGS] = encode_json(row[_LOGS]) if row[_LOGS] else None
    priority = row[_PRIORITY]
    if isinstance(priority, int) and not _INT64_MIN <= priority <= _INT64_MAX:
        row[_PRIORITY] = encode_json(priority)
    last: datetime | None = None
    last_us = 0
    for i in _TIME_COLUMNS:
        when = row[i]
        if when is not None:
            if when is not last:
                last = when
                last_us = to_us(when)
            row[i] = last_us
    row[_TAGS] = encode_json(row[_TAGS]).decode() if row[_TAGS] else None
    if row[_METADATA] is not None:
        row[_METADATA] = encode_json(row[_METADATA])
    row[_DEPENDS_ON] = encode_json(row[_DEPENDS_ON]) if row[_DEPENDS_ON] else None
    for i in _FLAG_COLUMNS:
        row[i] = int(row[i])
    return row


def job_to_row(job: Job) -> tuple[Any, ...]:
    """A Job as a tuple in :data:`JOB_COLUMNS` order."""
    return tuple(job_row_values(job))


def row_to_job(r: tuple[Any, ...] | Any) -> Job:
    """Inverse of :func:`job_to_row` for a row selected with :data:`READ_COLUMN_LIST`."""
    return Job(
        id=r[0],
        custom_id=r[1],
        name=r[2],
        queue=r[3],
        data=None if r[4] is None else _decode_any(r[4]),
        result=None if r[5] is None else _decode_any(r[5]),
        state=r[6],
        progress=r[7],
        logs=[] if r[8] is None else _decode_logs(r[8]),
        priority=r[9] if type(r[9]) is not bytes else _decode_any(r[9]),
        delay_until=None if r[10] is None else _dt(r[10]),
        created_at=_dt(r[11]),
        updated_at=_dt(r[12]),
        started_at=None if r[13] is None else _dt(r[13]),
        completed_at=None if r[14] is None else _dt(r[14]),
        max_attempts=r[15],
        attempt=r[16],
        backoff=r[17],
        backoff_delay_ms=r[18],
        last_error=r[19],
        ttl_ms=r[20],
        timeout_ms=r[21],
        unique_key=r[22],
        tags=[] if r[23] is None else _decode_strs(r[23]),
        group_id=r[24],
        metadata=None if r[25] is None else _decode_any(r[25]),
        depends_on=[] if r[26] is None else _decode_strs(r[26]),
        flow_id=r[27],
        lifo=bool(r[28]),
        remove_on_complete=bool(r[29]),
        remove_on_fail=bool(r[30]),
        worker_id=r[31],
        last_heartbeat=None if r[32] is None else _dt(r[32]),
        deliveries=r[33],
        lease_token=r[34],
        lease_expires_at=None if r[35] is None else _dt(r[35]),
        lease_ms=r[36],
        expires_at=None if r[37] is None else _dt(r[37]),
        deadline_at=None if r[38] is None else _dt(r[38]),
        sort_key=r[39],
    )


_TIME_FIELDS = frozenset(
    {
        "delay_until",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
        "last_heartbeat",
        "lease_expires_at",
        "expires_at",
        "deadline_at",
    }
)
_LIST_FIELDS = frozenset({"logs", "tags", "depends_on"})
_BOOL_FIELDS = frozenset({"lifo", "remove_on_complete", "remove_on_fail"})


def encode_field(name: str, value: Any) -> Any:
    """One Job field value as stored in its column (for ``transition`` updates)."""
    if name in _TIME_FIELDS:
        return None if value is None else to_us(value)
    if name == "tags":
        return encode_json(value).decode() if value else None
    if name in _LIST_FIELDS:
        return _opt_list(value or [])
    if name in _BOOL_FIELDS:
        return int(bool(value))
    if name == "data":
        return encode_json(value)
    if name in ("result", "metadata"):
        return _opt_json(value)
    if name == "priority":
        return encode_priority(value)
    return value
