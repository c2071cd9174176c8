"""``JobFilter`` → SQL for ``find_jobs`` and ``delete_jobs``, with keyset cursors.

States are validated and inlined as literals (never bound), so the planner can match the partial
indexes (``WHERE state = 'active'`` …) even for generic prepared plans.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rustqueue_core.errors import ValidationError
from rustqueue_core.models import Job
from rustqueue_core.storage import ALL_STATES, JobFilter
from rustqueue_postgres.sql import jobs_json, loose_queue_scan

_ORDERS = {
    "id": "j.id",
    "sort_key": "j.sort_key",
    "created": "j.created_at, j.id",
    "updated_desc": "j.updated_at DESC, j.id DESC",
}


_SORT_KEYS: dict[str, tuple[Callable[[Job], Any], bool]] = {
    "id": (lambda job: job.id, False),
    "sort_key": (lambda job: job.sort_key, False),
    "created": (lambda job: (job.created_at, job.id), False),
    "updated_desc": (lambda job: (job.updated_at, job.id), True),
}


class FilterQuery:
    def __init__(self, sql: str, args: list[Any], cursor_of: Callable[[Job], str], order: str) -> None:
        self.sql = sql
        self.args = args
        self.cursor_of = cursor_of
        self._key, self._reverse = _SORT_KEYS[order]

    def in_order(self, jobs: list[Job]) -> list[Job]:
        """The page in its order (``json_agg`` over an ordered subquery keeps it, but is not
        promised to; one sort of a page is cheap)."""
        jobs.sort(key=self._key, reverse=self._reverse)
        return jobs


class _Params:
    def __init__(self) -> None:
        self.args: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.args.append(value)
        return f"${len(self.args)}{cast}"


def _state_list(states: list[str]) -> str:
    unknown = [s for s in states if s not in ALL_STATES]
    if unknown:
        raise ValidationError(f"unknown job state {unknown[0]!r}")
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"


def _conditions(f: JobFilter, p: _Params, jobs: str) -> list[str]:
    where: list[str] = []
    if f.ids is not None:
        where.append(f"j.id = ANY({p.add(list(f.ids), '::text[]')})")
    if f.queue is not None:
        where.append(f"j.queue = {p.add(f.queue, '::text')}")
    if f.queues is not None:
        where.append(f"j.queue = ANY({p.add(list(f.queues), '::text[]')})")
    if f.states is not None:
        where.append(f"j.state IN {_state_list(f.states)}" if f.states else "false")
        if f.states == ["completed"] and f.queue is None and f.queues is None and f.ids is None:
            where.append(f"j.queue = ANY({_queues_with_completed_jobs(jobs)})")
    if f.flow_id is not None:
        where.append(f"j.flow_id = {p.add(f.flow_id, '::text')}")
    if f.group_id is not None:
        where.append(f"j.group_id = {p.add(f.group_id, '::text')}")
    if f.tags is not None:
        where.append(f"j.tags @> {p.add(list(f.tags), '::text[]')}")
    if f.children_of is not None:
        where.append(f"j.depends_on <> '{{}}' AND j.depends_on && {p.add(list(f.children_of), '::text[]')}")
    if f.unique_key is not None:
        where.append(f"j.unique_key = {p.add(f.unique_key, '::text')}")
    if f.remove_on_complete is not None:
        where.append(f"j.remove_on_complete = {p.add(f.remove_on_complete, '::boolean')}")
    bounds: list[tuple[datetime | None, str]] = [
        (f.delay_until_lte, "j.delay_until <= {}"),
        (f.lease_expires_before, "j.lease_expires_at < {}"),
        (f.deadline_before, "j.deadline_at < {}"),
        (f.expires_at_lte, "j.expires_at <= {}"),
        (f.completed_before, "j.completed_at < {}"),
        (f.updated_before, "j.updated_at < {}"),
    ]
    for value, template in bounds:
        if value is not None:
            where.append(template.format(p.add(value, "::timestamptz")))
    if f.without_blocked_children:
        where.append(
            f"NOT EXISTS (SELECT 1 FROM {jobs} c WHERE c.depends_on <> '{{}}' "
            "AND c.depends_on @> ARRAY[j.id] AND c.state = 'blocked')"
        )
    return where


def _queues_with_completed_jobs(jobs: str) -> str:
    """The queues holding completed jobs, as an array. Completed rows are indexed by (queue, state,
    completed_at); with the queues listed, retention ("completed before T" in every queue) reads one
    index range per queue instead of every entry of the index."""
    scan = loose_queue_scan("qc", jobs, "state = 'completed'")
    return f"ARRAY(WITH RECURSIVE {scan} SELECT name FROM qc WHERE name IS NOT NULL)"


def _cursor_condition(order: str, cursor: str, p: _Params) -> str:
    try:
        if order == "sort_key":
            return f"j.sort_key > {p.add(bytes.fromhex(cursor), '::bytea')}"
        if order in ("created", "updated_desc"):
            stamp, _, last_id = cursor.partition("|")
            column = "created_at" if order == "created" else "updated_at"
            op = ">" if order == "created" else "<"
            when = datetime.fromisoformat(stamp)
            return f"(j.{column}, j.id) {op} ({p.add(when, '::timestamptz')}, {p.add(last_id, '::text')})"
    except ValueError:
        raise ValidationError(f"invalid cursor {cursor!r}") from None
    return f"j.id > {p.add(cursor, '::text')}"


def _cursor_of(order: str) -> Callable[[Job], str]:
    if order == "sort_key":
        return lambda job: job.sort_key.hex()
    if order == "created":
        return lambda job: f"{job.created_at.isoformat()}|{job.id}"
    if order == "updated_desc":
        return lambda job: f"{job.updated_at.isoformat()}|{job.id}"
    return lambda job: job.id


def build_filter(jobs: str, f: JobFilter, cursor: str | None, limit: int, *, select: bool) -> FilterQuery:
    """``select``: a page of ``limit + 1`` rows (the extra one says another page exists) as a JSON
    array. Otherwise a DELETE of at most ``limit`` matching rows returning them (``limit < 0``: all)."""
    order = f.order if f.order in _ORDERS else "id"
    p = _Params()
    where = _conditions(f, p, jobs)
    if cursor is not None:
        where.append(_cursor_condition(order, cursor, p))
    where_sql = " AND ".join(where) if where else "true"
    order_sql = _ORDERS[order]
    if select:
        limit_sql = f" LIMIT {p.add(limit + 1, '::bigint')}" if limit >= 0 else ""
        page = f"(SELECT * FROM {jobs} j WHERE {where_sql} ORDER BY {order_sql}{limit_sql})"
        sql = jobs_json(page, "j")  # ordered in Python: see FilterQuery.in_order
    else:
        limit_sql = f" LIMIT {p.add(limit, '::bigint')}" if limit >= 0 else ""
        # FOR UPDATE re-checks the conditions on rows changed meanwhile (a job retried out of the
        # DLQ while retention runs is no longer deleted).
        lock = "FOR UPDATE"
        sql = (
            f"WITH d AS (DELETE FROM {jobs} x WHERE x.id IN (SELECT j.id FROM {jobs} j WHERE {where_sql} "
            f"ORDER BY {order_sql}{limit_sql} {lock}) RETURNING x.*) " + jobs_json("d", "d")
        )
    return FilterQuery(sql, p.args, _cursor_of(order), order)
