"""Read-side SQL of the SQLite backend: filters, paging, counts. Functions of a ``sqlite3.Connection``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from rustqueue_core.builtin.sqlite_schema import (
    NOT_WAITING,
    READ_COLUMN_LIST,
    UNFINISHED_SQL,
    decode_config,
    decode_schedule,
    row_to_job,
    to_us,
)
from rustqueue_core.models import Job, QueueConfig, QueueCounts, Schedule
from rustqueue_core.storage import ALL_STATES, UNFINISHED_STATES, JobFilter

#: SQLite's bound-parameter limit is 32766; chunks stay well below it.
CHUNK = 5_000
_SELECT_JOBS = f"SELECT {READ_COLUMN_LIST} FROM jobs"
_COUNT_FIELDS = frozenset(QueueCounts.__struct_fields__)


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] if items else []


_KNOWN_STATES = frozenset(ALL_STATES)
#: State sets written exactly as in the partial indexes' WHERE clauses, so the planner can use them.
_INDEXED_STATE_SETS = {
    frozenset(UNFINISHED_STATES): UNFINISHED_SQL,
    frozenset({"waiting", "delayed", "blocked"}): "('waiting', 'delayed', 'blocked')",
}
#: The column ``due_at`` mirrors in each state (see the schema): bounds on it can use ``jobs_state``.
_DUE_COLUMN = {
    "active": "lease_expires_at",
    "delayed": "delay_until",
    "completed": "completed_at",
    "dlq": "updated_at",
    "cancelled": "updated_at",
}


def _states_sql(states: Sequence[str]) -> str:
    """States as SQL literals (a fixed vocabulary, checked) rather than parameters: partial indexes
    are only usable when the query's condition visibly implies the index's."""
    wanted = frozenset(states)
    if len(wanted) == 1:
        sql = f"state = '{next(iter(wanted))}'"
    else:
        text = _INDEXED_STATE_SETS.get(wanted) or "(" + ", ".join(f"'{x}'" for x in sorted(wanted)) + ")"
        sql = f"state IN {text}"
    return sql if "waiting" in wanted else f"{sql} AND {NOT_WAITING}"


def _due_column(states: Sequence[str] | None) -> str | None:
    if not states:
        return None
    columns = {_DUE_COLUMN.get(state) for state in states}
    return columns.pop() if len(columns) == 1 else None


def source(f: JobFilter) -> str:
    """``jobs``, with an index hint where the planner (without statistics) would pick the broad
    ``jobs_state`` index over a small partial index made for exactly this housekeeping query."""
    states = frozenset(f.states or ())
    if f.children_of is not None or f.ids is not None:
        return "jobs INDEXED BY sqlite_autoindex_jobs_1"  # drive from the id list / job_deps
    if f.expires_at_lte is not None and states == {"waiting", "delayed", "blocked"}:
        return "jobs INDEXED BY jobs_expires"
    if f.deadline_before is not None and states == {"active"}:
        return "jobs INDEXED BY jobs_deadline"
    if f.remove_on_complete is True and states == {"completed"}:
        return "jobs INDEXED BY jobs_remove_on_complete"
    return "jobs"


def get_jobs(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Job | None]:
    found: dict[str, Job] = {}
    for part in chunks(list(dict.fromkeys(ids))):
        for row in conn.execute(f"{_SELECT_JOBS} WHERE id IN ({placeholders(len(part))})", part):
            found[row[0]] = row_to_job(row)
    return [found.get(i) for i in ids]


def filter_sql(f: JobFilter) -> tuple[str, list[Any]]:
    """WHERE clause (without the keyword; ``1`` when empty) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if f.ids is not None:
        clauses.append(f"id IN ({placeholders(len(f.ids))})" if f.ids else "0")
        params.extend(f.ids)
    if f.queue is not None:
        clauses.append("queue = ?")
        params.append(f.queue)
    if f.queues is not None:
        clauses.append(f"queue IN ({placeholders(len(f.queues))})" if f.queues else "0")
        params.extend(f.queues)
    if f.states is not None:
        if not f.states:
            clauses.append("0")
        elif set(f.states) <= _KNOWN_STATES:
            clauses.append(_states_sql(f.states))
        else:
            clauses.append(f"state IN ({placeholders(len(f.states))})")
            params.extend(f.states)
    if f.flow_id is not None:
        clauses.append("flow_id = ?")
        params.append(f.flow_id)
    if f.group_id is not None:
        clauses.append("group_id = ?")
        params.append(f.group_id)
    for tag in f.tags or ():
        clauses.append("tags IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?)")
        params.append(tag)
    if f.children_of is not None:
        clauses.append(
            f"id IN (SELECT child_id FROM job_deps WHERE parent_id IN ({placeholders(len(f.children_of))}))"
            if f.children_of
            else "0"
        )
        params.extend(f.children_of)
    if f.unique_key is not None:
        clauses.append("unique_key = ?")
        params.append(f.unique_key)
    if f.remove_on_complete is not None:
        clauses.append(f"remove_on_complete = {int(f.remove_on_complete)}")
    due_column = _due_column(f.states) if f.states and set(f.states) <= _KNOWN_STATES else None
    for column, op, bound in (
        ("delay_until", "<=", f.delay_until_lte),
        ("lease_expires_at", "<", f.lease_expires_before),
        ("deadline_at", "<", f.deadline_before),
        ("expires_at", "<=", f.expires_at_lte),
        ("completed_at", "<", f.completed_before),
        ("updated_at", "<", f.updated_before),
    ):
        if bound is not None:
            clauses.append(f"{column} {op} ?")
            params.append(to_us(bound))
            if column == due_column:  # same value, indexed: lets the planner range-scan jobs_state
                clauses.append(f"due_at {op} ?")
                params.append(to_us(bound))
    if f.without_blocked_children:
        clauses.append(
            "NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs c ON c.id = d.child_id "
            "WHERE d.parent_id = jobs.id AND c.state = 'blocked')"
        )
    return (" AND ".join(clauses) or "1"), params


def _order(f: JobFilter, cursor: str | None) -> tuple[str, str | None, list[Any]]:
    """ORDER BY clause, cursor condition and its parameters for ``f.order``."""
    if f.order == "sort_key":
        cond_params: list[Any] = []
        cond = None
        if cursor:
            key_hex, _, last_id = cursor.partition(":")
            cond = "(sort_key > ? OR (sort_key = ? AND id > ?))"
            key = bytes.fromhex(key_hex)
            cond_params = [key, key, last_id]
        return "sort_key, id", cond, cond_params
    if f.order == "created":
        if cursor:
            us_text, _, last_id = cursor.partition(":")
            us = int(us_text)
            return "created_at, id", "(created_at > ? OR (created_at = ? AND id > ?))", [us, us, last_id]
        return "created_at, id", None, []
    if f.order == "updated_desc":
        if cursor:
            us_text, _, last_id = cursor.partition(":")
            us = int(us_text)
            return (
                "updated_at DESC, id DESC",
                "(updated_at < ? OR (updated_at = ? AND id < ?))",
                [us, us, last_id],
            )
        return "updated_at DESC, id DESC", None, []
    if f.order != "id":
        raise ValueError(f"unknown order {f.order!r}")
    return "id", ("id > ?" if cursor else None), ([cursor] if cursor else [])


def _cursor_of(f: JobFilter, job: Job) -> str:
    if f.order == "sort_key":
        return f"{job.sort_key.hex()}:{job.id}"
    if f.order == "updated_desc":
        return f"{to_us(job.updated_at)}:{job.id}"
    if f.order == "created":
        return f"{to_us(job.created_at)}:{job.id}"
    return job.id


def find_jobs(conn: sqlite3.Connection, f: JobFilter, limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
    if limit <= 0:
        return [], None
    where, params = filter_sql(f)
    order, cond, cond_params = _order(f, cursor)
    if cond:
        where = f"({where}) AND {cond}"
        params = [*params, *cond_params]
    sql = f"SELECT {READ_COLUMN_LIST} FROM {source(f)} WHERE {where} ORDER BY {order} LIMIT ?"
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    jobs = [row_to_job(r) for r in rows[:limit]]
    next_cursor = _cursor_of(f, jobs[-1]) if len(rows) > limit else None
    return jobs, next_cursor


def select_ids(conn: sqlite3.Connection, f: JobFilter, limit: int) -> list[str]:
    where, params = filter_sql(f)
    order, _, _ = _order(f, None)
    return [
        r[0]
        for r in conn.execute(f"SELECT id FROM {source(f)} WHERE {where} ORDER BY {order} LIMIT ?", [*params, limit])
    ]


def count_jobs(conn: sqlite3.Connection, queues: Sequence[str] | None) -> dict[str, QueueCounts]:
    if queues is not None and not queues:
        return {}
    # two index-only scans: waiting jobs from ``jobs_claim``, every other state from ``jobs_state``
    in_queues = ""
    params: list[Any] = []
    if queues is not None:
        in_queues = f" AND queue IN ({placeholders(len(queues))})"
        params.extend(queues)
    sql = (
        f"SELECT queue, 'waiting', count(*) FROM jobs WHERE state = 'waiting'{in_queues} GROUP BY queue "
        f"UNION ALL SELECT queue, state, count(*) FROM jobs WHERE {NOT_WAITING}{in_queues} GROUP BY queue, state"
    )
    counts: dict[str, QueueCounts] = {}
    for queue, state, n in conn.execute(sql, params + params):
        target = counts.setdefault(queue, QueueCounts())
        if state in _COUNT_FIELDS:
            setattr(target, state, getattr(target, state) + n)
        elif state == "created":  # reserved state, shown as waiting (SEMANTICS §1.2)
            target.waiting += n
    return counts


def queue_names(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT DISTINCT queue FROM jobs UNION SELECT name FROM queue_configs ORDER BY 1")
    return [r[0] for r in rows]


def get_queue_configs(conn: sqlite3.Connection) -> dict[str, QueueConfig]:
    return {name: decode_config(body) for name, body in conn.execute("SELECT name, body FROM queue_configs")}


def get_schedule(conn: sqlite3.Connection, name: str) -> Schedule | None:
    row = conn.execute("SELECT body FROM schedules WHERE name = ?", (name,)).fetchone()
    return None if row is None else decode_schedule(row[0])


def list_schedules(conn: sqlite3.Connection, active_only: bool) -> list[Schedule]:
    sql = "SELECT body FROM schedules" + (" WHERE paused = 0" if active_only else "") + " ORDER BY name"
    return [decode_schedule(r[0]) for r in conn.execute(sql)]
