"""Admin-side write operations of the SQLite backend (deletes, renames, queue configs, schedules) and
the hybrid mode's bulk load. Functions of a ``sqlite3.Connection`` run inside the writer's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from rustqueue_core.builtin.sqlite_ops import insert_jobs
from rustqueue_core.builtin.sqlite_query import chunks, placeholders, select_ids
from rustqueue_core.builtin.sqlite_schema import (
    READ_COLUMN_LIST,
    UNFINISHED_SQL,
    decode_schedule,
    encode_json,
    row_to_job,
    to_us,
)
from rustqueue_core.models import Job, QueueConfig, Schedule
from rustqueue_core.rowcache import RowCache
from rustqueue_core.storage import JobFilter


def delete_jobs(
    conn: sqlite3.Connection,
    ids: Sequence[str] | None,
    job_filter: JobFilter | None,
    limit: int,
    cache: RowCache | None = None,
) -> list[Job]:
    if ids is None:
        if job_filter is None:
            return []
        ids = select_ids(conn, job_filter, limit)
    deleted: list[Job] = []
    for part in chunks(list(dict.fromkeys(ids))):
        marks = placeholders(len(part))
        rows = conn.execute(f"DELETE FROM jobs WHERE id IN ({marks}) RETURNING {READ_COLUMN_LIST}", part).fetchall()
        conn.execute(f"DELETE FROM job_deps WHERE child_id IN ({marks})", part)
        conn.execute(f"DELETE FROM job_payloads WHERE id IN ({marks})", part)
        deleted.extend(row_to_job(r) for r in rows)
    if cache is not None:
        cache.forget(j.id for j in deleted)
    return deleted


def rename_queue(conn: sqlite3.Connection, old: str, new: str, now_us: int, cache: RowCache | None = None) -> int:
    if cache is not None:
        cache.clear()
    moved = conn.execute(
        "UPDATE jobs SET queue = ?, updated_at = ?, rev = rev + 1 WHERE queue = ?", (new, now_us, old)
    ).rowcount
    row = conn.execute("SELECT body FROM queue_configs WHERE name = ?", (old,)).fetchone()
    if row is not None:
        config = msgspec.json.decode(row[0], type=QueueConfig)
        conn.execute("DELETE FROM queue_configs WHERE name = ?", (old,))
        put_queue_config(conn, msgspec.structs.replace(config, name=new))
    return int(moved)


def put_queue_config(conn: sqlite3.Connection, config: QueueConfig) -> None:
    conn.execute(
        "INSERT INTO queue_configs (name, body) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        (config.name, encode_json(config)),
    )


def delete_queue_config(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("DELETE FROM queue_configs WHERE name = ?", (name,))


# ------------------------------------------------------------------------------------ schedules


def put_schedule(conn: sqlite3.Connection, schedule: Schedule) -> None:
    conn.execute(
        "INSERT INTO schedules (name, paused, next_run_at, body) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE "
        "SET paused = excluded.paused, next_run_at = excluded.next_run_at, body = excluded.body",
        (
            schedule.name,
            int(schedule.paused),
            None if schedule.next_run_at is None else to_us(schedule.next_run_at),
            encode_json(schedule),
        ),
    )


def delete_schedule(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount > 0


def fire_schedule(
    conn: sqlite3.Connection,
    name: str,
    expected_us: int | None,
    updates: dict[str, Any],
    jobs: Sequence[Job],
) -> bool:
    row = conn.execute("SELECT next_run_at, body FROM schedules WHERE name = ?", (name,)).fetchone()
    if row is None or row[0] != expected_us:
        return False
    schedule = msgspec.structs.replace(decode_schedule(row[1]), **updates)
    put_schedule(conn, schedule)
    if jobs:
        insert_jobs(conn, jobs)
    return True


def load_all(conn: sqlite3.Connection, unfinished_only: bool) -> list[Job]:
    """Every (unfinished) job, for the hybrid mode's load at open."""
    where = f" WHERE state IN {UNFINISHED_SQL}" if unfinished_only else ""
    return [row_to_job(r) for r in conn.execute(f"SELECT {READ_COLUMN_LIST} FROM jobs{where}")]
