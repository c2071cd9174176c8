"""Write operations of the SQLite backend: functions of a ``sqlite3.Connection`` run by the writer thread
inside its (group) transaction. Each raises to undo its own effects."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from rustqueue_core.builtin.sqlite_query import chunks, placeholders
from rustqueue_core.builtin.sqlite_schema import (
    CHANGED_INDEXES,
    DDL,
    INLINE_DATA_MAX,
    JOB_COLUMNS,
    NOT_WAITING,
    READ_COLUMN_LIST,
    SCHEMA_VERSION,
    UNFINISHED_SQL,
    decode_json,
    encode_field,
    encode_json,
    from_us,
    job_row_values,
    row_to_job,
)
from rustqueue_core.models import Job, copy_job
from rustqueue_core.rowcache import RowCache
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
    state_mismatch,
)

#: Outcome of a change whose update would give a second unfinished job the same unique key.
DUPLICATE_KEY = "duplicate_key"

_INSERT_DEP = "INSERT OR IGNORE INTO job_deps (parent_id, child_id) VALUES (?, ?)"
_ANY_DEPENDENCY = "SELECT 1 FROM job_deps LIMIT 1"
_PUT_PAYLOAD = "INSERT OR REPLACE INTO job_payloads (id, data) VALUES (?, ?)"
_DATA = JOB_COLUMNS.index("data")
_CLAIM_SET = (
    "UPDATE jobs SET state = 'active', started_at = ?1, updated_at = ?1, deliveries = deliveries + 1, "
    "rev = rev + 1, "
    "worker_id = ?2, lease_token = lower(hex(randomblob(16))), lease_ms = ?3, lease_expires_at = ?4, "
    "deadline_at = CASE WHEN timeout_ms > 0 THEN ?1 + timeout_ms * 1000 END, last_heartbeat = NULL, "
    "delay_until = NULL "
)
_NOT_EXPIRED = "(expires_at IS NULL OR expires_at > ?1)"
#: Claimable rows of queue ?5 in claim order: waiting plus due delayed (``claims_due_delayed``).
_CANDIDATES = (
    "SELECT id, sort_key, group_id FROM ("
    f"SELECT id, sort_key, group_id FROM jobs WHERE queue = ?5 AND state = 'waiting' AND {_NOT_EXPIRED} "
    "ORDER BY sort_key LIMIT ?6) "
    "UNION ALL SELECT id, sort_key, group_id FROM ("
    f"SELECT id, sort_key, group_id FROM jobs WHERE state = 'delayed' AND {NOT_WAITING} AND due_at <= ?1 "
    "AND queue = ?5 "
    f"AND {_NOT_EXPIRED} ORDER BY sort_key LIMIT ?6) "
    "ORDER BY sort_key"
)
_RETURNING = f"RETURNING {READ_COLUMN_LIST}, rev"
#: A claim returns only what it changed unpredictably; the rest comes from the row cache (or a read).
_CLAIM_RETURNING = "RETURNING id, rev, deliveries, lease_token, deadline_at, sort_key"
_CLAIM_DUE = f"{_CLAIM_SET} WHERE id IN (SELECT id FROM ({_CANDIDATES} LIMIT ?6)) {_CLAIM_RETURNING}"
#: The common case, when no delayed job is due: waiting jobs only (cheaper than the union), picked by
#: rowid from the covering ``jobs_claim`` index (no table read, no id-index lookup per row).
_CLAIM_WAITING = (
    f"{_CLAIM_SET} WHERE rowid IN (SELECT rowid FROM jobs WHERE queue = ?5 AND state = 'waiting' "
    f"AND {_NOT_EXPIRED} "
    f"ORDER BY sort_key LIMIT ?6) {_CLAIM_RETURNING}"
)
_ANY_DUE = f"SELECT 1 FROM jobs WHERE state = 'delayed' AND {NOT_WAITING} AND due_at <= ? LIMIT 1"
_COMPLETE_SET = (
    "state = 'completed', completed_at = ?1, updated_at = ?1, lease_token = NULL, lease_expires_at = NULL, "
    "lease_ms = NULL, deadline_at = NULL, last_heartbeat = NULL, rev = rev + 1"
)
_REV = len(JOB_COLUMNS)
_STATE_COLUMNS = frozenset(JOB_COLUMNS)


def migrate(conn: sqlite3.Connection) -> None:
    """Create or check the schema (idempotent; run by the writer thread at open)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS rq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM rq_meta WHERE key = 'schema_version'").fetchone()
        found = None if row is None else int(row[0])
        if found is not None and found > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {found} is newer than this rustqueue supports ({SCHEMA_VERSION})"
            )
        for version in range(found or SCHEMA_VERSION, SCHEMA_VERSION):
            for index in CHANGED_INDEXES.get(version + 1, ()):
                conn.execute(f"DROP INDEX IF EXISTS {index}")
        for statement in DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        if found != SCHEMA_VERSION:
            conn.execute(
                "INSERT OR REPLACE INTO rq_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# ------------------------------------------------------------------------------------------- insert


def _holders(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for part in chunks(keys, 2_000):
        values = ",".join("(?, ?)" for _ in part)
        params = [v for pair in part for v in pair]
        sql = (
            f"SELECT queue, unique_key, id FROM jobs WHERE state IN {UNFINISHED_SQL} "
            f"AND (queue, unique_key) IN (VALUES {values})"
        )
        for queue, key, holder in conn.execute(sql, params):
            found[(queue, key)] = holder
    return found


def check_unique(conn: sqlite3.Connection, jobs: Sequence[Job]) -> None:
    """Raise :class:`InsertConflict` for the first job whose key is held in storage or earlier in the
    batch. Runs inside the inserting transaction, which holds the write lock: check and insert are atomic."""
    keyed = [
        (i, (j.queue, j.unique_key))
        for i, j in enumerate(jobs)
        if j.unique_key is not None and j.state in UNFINISHED_STATES
    ]
    if not keyed:
        return
    held = _holders(conn, [k for _, k in keyed])  # type: ignore[misc]
    seen: dict[tuple[str, str], str] = {}
    for i, key in keyed:
        holder = held.get(key) or seen.get(key)  # type: ignore[arg-type]
        if holder is not None:
            raise InsertConflict(i, key[1], holder)  # type: ignore[arg-type]
        seen[key] = jobs[i].id  # type: ignore[index]


_insert_sql: dict[tuple[bool, ...], str] = {}


def _insert_for(shape: tuple[bool, ...]) -> str:
    sql = _insert_sql.get(shape)
    if sql is None:
        columns = [name for name, present in zip(JOB_COLUMNS, shape, strict=True) if present]
        sql = _insert_sql[shape] = f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({placeholders(len(columns))})"
    return sql


def write_jobs(conn: sqlite3.Connection, jobs: Sequence[Job]) -> None:
    """Insert rows naming only their non-NULL columns (binding parameters dominates the cost of an
    insert, and most optional fields of a new job are unset): one ``executemany`` per row shape."""
    by_shape: dict[tuple[bool, ...], list[tuple[Any, ...]]] = {}
    payloads: list[tuple[str, bytes]] = []
    for job in jobs:
        row = job_row_values(job)
        if len(row[_DATA]) > INLINE_DATA_MAX:
            payloads.append((job.id, row[_DATA]))
            row[_DATA] = None
        shape = tuple([v is not None for v in row])
        rows = by_shape.get(shape)
        if rows is None:
            rows = by_shape[shape] = []
        rows.append(tuple([v for v in row if v is not None]))
    for shape, rows in by_shape.items():
        conn.executemany(_insert_for(shape), rows)
    if payloads:
        conn.executemany(_PUT_PAYLOAD, payloads)
    deps = [(parent, j.id) for j in jobs for parent in j.depends_on]
    if deps:
        conn.executemany(_INSERT_DEP, deps)


def insert_jobs(conn: sqlite3.Connection, jobs: Sequence[Job], cache: RowCache | None = None) -> None:
    check_unique(conn, jobs)
    write_jobs(conn, jobs)
    if cache is not None:
        for job in jobs:
            if job.state == "waiting":
                cache.put(job.id, 0, copy_job(job))


def insert_jobs_merged(conn: sqlite3.Connection, calls: list[tuple[Any, ...]]) -> list[None]:
    """Several ``insert_jobs(conn, jobs, cache)`` calls as one (group commit); raises if any would,
    and the writer then runs them one by one."""
    jobs = [job for call in calls for job in call[0]]
    insert_jobs(conn, jobs, calls[0][1] if len(calls[0]) > 1 else None)
    return [None] * len(calls)


# -------------------------------------------------------------------------------------------- claim


def _claimed(
    conn: sqlite3.Connection,
    rows: list[Any],
    cache: RowCache | None,
    now_us: int,
    consumer_id: str | None,
    lease_ms: int,
    lease_until: int,
) -> list[Job]:
    """Jobs of ``_CLAIM_RETURNING`` rows in claim order: cached rows patched, others read."""
    rows.sort(key=lambda r: r[5])
    cache = cache if cache is not None else RowCache()
    now = from_us(now_us)
    until = from_us(lease_until)
    jobs: list[Job | None] = []
    unknown: list[str] = []
    for job_id, rev, deliveries, token, deadline, _key in rows:
        cached = cache.take(job_id, rev)
        if cached is None:
            unknown.append(job_id)
            jobs.append(None)
            continue
        # ``take`` removed the cached job: it is the writer's own copy, patched in place
        cached.state = "active"
        cached.started_at = now
        cached.updated_at = now
        cached.deliveries = deliveries
        cached.worker_id = consumer_id
        cached.lease_token = token
        cached.lease_ms = lease_ms
        cached.lease_expires_at = until
        cached.deadline_at = None if deadline is None else from_us(deadline)
        cached.last_heartbeat = None
        cached.delay_until = None
        jobs.append(cached)
    if unknown:
        read: dict[str, Job] = {}
        for part in chunks(unknown):
            for row in conn.execute(
                f"SELECT {READ_COLUMN_LIST} FROM jobs WHERE id IN ({placeholders(len(part))})", part
            ):
                read[row[0]] = row_to_job(row)
        jobs = [job if job is not None else read[row[0]] for job, row in zip(jobs, rows, strict=True)]
    claimed: list[Job] = []
    put = cache.put
    for row, job in zip(rows, jobs, strict=True):
        assert job is not None
        put(row[0], row[1], job)  # the cache keeps this object; the caller gets a copy
        claimed.append(copy_job(job))
    return claimed


def claim(
    conn: sqlite3.Connection,
    queue: str,
    n: int,
    now_us: int,
    consumer_id: str | None,
    lease_ms: int,
    group_limit: int | None,
    cache: RowCache | None = None,
) -> list[Job]:
    if n <= 0:
        return []
    lease_until = now_us + lease_ms * 1000
    if group_limit is None:
        sql = _CLAIM_DUE if conn.execute(_ANY_DUE, (now_us,)).fetchone() else _CLAIM_WAITING
        rows = conn.execute(sql, (now_us, consumer_id, lease_ms, lease_until, queue, n)).fetchall()
        return _claimed(conn, rows, cache, now_us, consumer_id, lease_ms, lease_until)
    # group concurrency: walk candidates lazily in claim order, skipping saturated groups
    active: dict[str, int] = dict(
        conn.execute(
            "SELECT group_id, count(*) FROM jobs "
            "WHERE queue = ? AND state = 'active' AND group_id IS NOT NULL "
            "GROUP BY group_id",
            (queue,),
        ).fetchall()
    )
    picked: list[str] = []
    candidates = conn.execute(_CANDIDATES, (now_us, None, None, None, queue, -1))
    for job_id, _key, group in candidates:
        if group is not None:
            taken = active.get(group, 0)
            if taken >= group_limit:
                continue
            active[group] = taken + 1
        picked.append(job_id)
        if len(picked) >= n:
            break
    candidates.close()
    if not picked:
        return []
    sql = f"{_CLAIM_SET} WHERE id IN ({','.join('?' * len(picked))}) {_CLAIM_RETURNING}"
    # plain ``?`` after ``?4`` number from 5, so the ids follow the four claim parameters
    claimed = conn.execute(sql, [now_us, consumer_id, lease_ms, lease_until, *picked]).fetchall()
    return _claimed(conn, claimed, cache, now_us, consumer_id, lease_ms, lease_until)


# ------------------------------------------------------------------------------------- complete


def _mismatch(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, tuple[str, str | None, str | None]]:
    out: dict[str, tuple[str, str | None, str | None]] = {}
    for part in chunks(list(ids)):
        for job_id, state, token, worker in conn.execute(
            f"SELECT id, state, lease_token, worker_id FROM jobs WHERE id IN ({placeholders(len(part))})",
            part,
        ):
            out[job_id] = (state, token, worker)
    return out


def _failure(current: tuple[str, str | None, str | None] | None) -> str:
    if current is None:
        return NOT_FOUND
    if current[0] != "active":
        return state_mismatch(current[0])
    return LEASE_LOST


def complete(
    conn: sqlite3.Connection, items: Sequence[CompleteItem], now_us: int, cache: RowCache | None = None
) -> list[CompleteOutcome]:
    cache = cache if cache is not None else RowCache()
    done: dict[str, Job] = {}
    ids = [it.id for it in items]
    # ``plain``: no results and no lease tokens, and every item names the same consumer (or none):
    # the common batch ack, one IN list with nothing per item.
    plain = True
    owner = items[0].consumer_id if items else None
    for it in items:
        if it.result is not None or it.lease_token is not None or it.consumer_id != owner:
            plain = False
            break
    results: dict[str, bytes | None] = (
        dict.fromkeys(ids) if plain else {it.id: None if it.result is None else encode_json(it.result) for it in items}
    )
    returned: list[tuple[str, int]] = []
    if plain and len(results) == len(ids):
        owned = "" if owner is None else "AND worker_id = ?2 "
        head = [now_us] if owner is None else [now_us, owner]
        for part in chunks(ids):
            sql = (
                f"UPDATE jobs SET {_COMPLETE_SET}, result = NULL "
                f"WHERE state = 'active' {owned}AND id IN ({placeholders(len(part))}) RETURNING id, rev"
            )
            returned += conn.execute(sql, [*head, *part]).fetchall()
    elif len(results) == len(ids):
        for part in chunks(list(items), 2_000):
            values = ",".join("(?, ?, ?, ?)" for _ in part)
            params: list[Any] = [now_us]
            for it in part:
                params += (it.id, results[it.id], it.lease_token, it.consumer_id)
            sql = (
                f"UPDATE jobs SET {_COMPLETE_SET}, result = v.column2 FROM (VALUES {values}) AS v "
                "WHERE jobs.id = v.column1 AND jobs.state = 'active' "
                "AND (v.column3 IS NULL OR jobs.lease_token = v.column3) "
                "AND (v.column4 IS NULL OR jobs.worker_id = v.column4) "
                "RETURNING jobs.id, jobs.rev"
            )
            returned += conn.execute(sql, params).fetchall()
    else:  # the same id twice: item by item, so the first wins and the second sees it completed
        seen: set[str] = set()
        for it in items:
            if it.id in seen:
                continue
            seen.add(it.id)
            row = conn.execute(
                f"UPDATE jobs SET {_COMPLETE_SET}, result = ?2 WHERE id = ?3 AND state = 'active' "
                "AND (?4 IS NULL OR lease_token = ?4) AND (?5 IS NULL OR worker_id = ?5) RETURNING id, rev",
                (now_us, results[it.id], it.id, it.lease_token, it.consumer_id),
            ).fetchone()
            if row is not None:
                returned.append(row)
    when = from_us(now_us)
    unknown: list[str] = []
    take = cache.take
    for job_id, rev in returned:
        cached = take(job_id, rev)
        if cached is None:
            unknown.append(job_id)
            continue
        stored = None if plain else results[job_id]
        # ``take`` removed the cached job, so nobody else holds it: patch it in place and hand it out
        cached.state = "completed"
        cached.completed_at = when
        cached.updated_at = when
        cached.result = None if stored is None else decode_json(stored)
        cached.lease_token = None
        cached.lease_expires_at = None
        cached.lease_ms = None
        cached.deadline_at = None
        cached.last_heartbeat = None
        done[job_id] = cached
    for part in chunks(unknown):
        for row in conn.execute(f"SELECT {READ_COLUMN_LIST} FROM jobs WHERE id IN ({placeholders(len(part))})", part):
            done[row[0]] = row_to_job(row)
    blocked = _blocked_children(conn, list(done)) if done else {}
    missing = [i for i in ids if i not in done]
    current = _mismatch(conn, missing) if missing else {}
    outcomes: list[CompleteOutcome] = []
    if len(done) == len(items) and not missing:  # every item completed, each id once
        for it in items:
            outcomes.append(
                CompleteOutcome(
                    id=it.id,
                    outcome=OK,
                    job=done[it.id],
                    skipped=insert_spawned(conn, it.spawned) if it.spawned else [],
                    blocked_children=blocked.get(it.id, []),
                )
            )
        return outcomes
    reported: set[str] = set()
    for it in items:
        job = done.get(it.id)
        if job is None or it.id in reported:
            state = current.get(it.id) if job is None else ("completed", None, None)
            outcomes.append(CompleteOutcome(id=it.id, outcome=_failure(state)))
            continue
        reported.add(it.id)
        skipped = insert_spawned(conn, it.spawned) if it.spawned else []
        outcomes.append(
            CompleteOutcome(id=it.id, outcome=OK, job=job, skipped=skipped, blocked_children=blocked.get(it.id, []))
        )
    return outcomes


def _blocked_children(conn: sqlite3.Connection, parents: list[str]) -> dict[str, list[str]]:
    """Blocked dependents of ``parents``, read in the completing transaction (writers are serialised)."""
    out: dict[str, list[str]] = {}
    if conn.execute(_ANY_DEPENDENCY).fetchone() is None:
        return out  # one probe instead of one per parent, for the many stores without flows
    for part in chunks(parents):
        for parent, child in conn.execute(
            "SELECT d.parent_id, d.child_id FROM job_deps d JOIN jobs c ON c.id = d.child_id "
            f"WHERE d.parent_id IN ({placeholders(len(part))}) AND c.state = 'blocked' ORDER BY d.child_id",
            part,
        ):
            out.setdefault(parent, []).append(child)
    return out


def insert_spawned(conn: sqlite3.Connection, spawned: Sequence[Job]) -> list[tuple[int, str | None]]:
    """Insert follow-up jobs one by one, skipping (and reporting) those whose unique key is held."""
    skipped: list[tuple[int, str | None]] = []
    for index, job in enumerate(spawned):
        if job.unique_key is not None and job.state in UNFINISHED_STATES:
            holder = conn.execute(
                f"SELECT id FROM jobs WHERE queue = ? AND unique_key = ? AND state IN {UNFINISHED_SQL}",
                (job.queue, job.unique_key),
            ).fetchone()
            if holder is not None:
                skipped.append((index, holder[0]))
                continue
        write_jobs(conn, [job])
    return skipped


# ----------------------------------------------------------------------------------- transition


def transition(
    conn: sqlite3.Connection, changes: Sequence[Change], now_us: int, cache: RowCache | None = None
) -> list[ChangeOutcome]:
    outcomes: list[ChangeOutcome] = []
    for change in changes:
        updates = {k: v for k, v in change.updates.items() if k != "updated_at"}
        unknown = set(updates) - _STATE_COLUMNS - {"id"}
        if unknown or "id" in updates:
            raise ValueError(f"transition cannot update {sorted(unknown or {'id'})}")
        columns = sorted(updates)
        sets = ", ".join(f"{c} = ?" for c in columns)
        params: list[Any] = [encode_field(c, updates[c]) for c in columns]
        expected = sorted(change.expected)
        sql = (
            f"UPDATE jobs SET {sets + ', ' if sets else ''}updated_at = ?, rev = rev + 1 WHERE id = ? "
            f"AND state IN ({placeholders(len(expected))})"
        )
        params += [now_us, change.id, *expected]
        if change.lease_token is not None:
            sql += " AND lease_token = ?"
            params.append(change.lease_token)
        if change.consumer_id is not None:
            sql += " AND worker_id = ?"
            params.append(change.consumer_id)
        try:
            row = conn.execute(f"{sql} {_RETURNING}", params).fetchone()
        except sqlite3.IntegrityError:
            outcomes.append(ChangeOutcome(id=change.id, outcome=DUPLICATE_KEY))
            continue
        if row is None:
            current = _mismatch(conn, [change.id]).get(change.id)
            outcome = (
                NOT_FOUND
                if current is None
                else (state_mismatch(current[0]) if current[0] not in change.expected else LEASE_LOST)
            )
            outcomes.append(ChangeOutcome(id=change.id, outcome=outcome))
            continue
        if "depends_on" in updates:
            conn.execute("DELETE FROM job_deps WHERE child_id = ?", (change.id,))
            conn.executemany(_INSERT_DEP, [(p, change.id) for p in updates["depends_on"] or ()])
        job = row_to_job(row)
        if "data" in updates:
            _store_data(conn, change.id, updates["data"])
            job.data = updates["data"]
        if cache is not None:
            if job.state == "active":
                cache.put(job.id, row[_REV], copy_job(job))
            else:
                cache.forget([job.id])
        outcomes.append(ChangeOutcome(id=change.id, outcome=OK, job=job))
    return outcomes


def _store_data(conn: sqlite3.Connection, job_id: str, data: Any) -> None:
    """Put a changed payload inline or out of row by its size (the row's ``data`` column is updated to
    the inline value or NULL)."""
    encoded = encode_json(data)
    if len(encoded) > INLINE_DATA_MAX:
        conn.execute("UPDATE jobs SET data = NULL WHERE id = ?", (job_id,))
        conn.execute(_PUT_PAYLOAD, (job_id, encoded))
    else:
        conn.execute("UPDATE jobs SET data = ? WHERE id = ?", (encoded, job_id))
        conn.execute("DELETE FROM job_payloads WHERE id = ?", (job_id,))


def promote_due(conn: sqlite3.Connection, now_us: int, limit: int) -> list[tuple[str, str]]:
    if limit <= 0:
        return []
    rows = conn.execute(
        "UPDATE jobs SET state = 'waiting', delay_until = NULL, updated_at = ?1, rev = rev + 1 WHERE id IN ("
        f"SELECT id FROM jobs WHERE state = 'delayed' AND {NOT_WAITING} AND due_at <= ?1 ORDER BY due_at LIMIT ?2) "
        "RETURNING id, queue, delay_until",
        (now_us, limit),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]
