"""SQLite persistence of webhooks and the delivery outbox.

Blocking by design: the service runs every call on one dedicated thread, which also serialises
access to the single connection. WAL journal, ``synchronous=NORMAL``: a committed outbox row
survives a process crash; an OS crash may lose the last few milliseconds of deliveries.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    queues      TEXT NOT NULL,
    secret      TEXT,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    origin      TEXT NOT NULL DEFAULT 'api'
);
CREATE TABLE IF NOT EXISTS deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            BLOB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    created_at      REAL NOT NULL,
    finished_at     REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_by_webhook ON deliveries (webhook_id, status);
"""

PENDING = "pending"
FAILED = "failed"


class Webhook(msgspec.Struct, kw_only=True):
    """A registered webhook. ``secret`` never leaves the process (see :meth:`to_wire`)."""

    id: str
    url: str
    events: list[str]
    queues: list[str]
    secret: str | None = None
    active: bool = True
    created_at: datetime
    origin: str = "api"

    def to_wire(self) -> dict[str, object]:
        from rustqueue_webhooks.events import rfc3339

        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "queues": list(self.queues),
            "active": self.active,
            "created_at": rfc3339(self.created_at),
        }


class Delivery(msgspec.Struct, kw_only=True):
    """One outbox row: the exact body to POST to one webhook, and its progress."""

    id: int
    webhook_id: str
    event: str
    body: bytes
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    last_status: int | None
    created_at: float
    finished_at: float | None

    def to_wire(self) -> dict[str, object]:
        def ts(value: float | None) -> str | None:
            from rustqueue_webhooks.events import rfc3339

            return None if value is None else rfc3339(datetime.fromtimestamp(value, UTC))

        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": ts(self.next_attempt_at) if self.status == PENDING else None,
            "last_error": self.last_error,
            "last_status": self.last_status,
            "created_at": ts(self.created_at),
            "finished_at": ts(self.finished_at),
        }


_DELIVERY_COLUMNS = (
    "id, webhook_id, event, body, status, attempts, next_attempt_at, last_error, last_status, created_at, finished_at"
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row[0],
        webhook_id=row[1],
        event=row[2],
        body=bytes(row[3]),
        status=row[4],
        attempts=row[5],
        next_attempt_at=row[6],
        last_error=row[7],
        last_status=row[8],
        created_at=row[9],
        finished_at=row[10],
    )


class WebhookStore:
    """Webhooks and outbox rows in one SQLite file. Not thread-safe: use from one thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:" and not path.startswith("file:"):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ webhooks
    def list_webhooks(self) -> list[Webhook]:
        rows = self._db.execute(
            "SELECT id, url, events, queues, secret, active, created_at, origin FROM webhooks ORDER BY created_at, id"
        ).fetchall()
        return [
            Webhook(
                id=r[0],
                url=r[1],
                events=json.loads(r[2]),
                queues=json.loads(r[3]),
                secret=r[4],
                active=bool(r[5]),
                created_at=datetime.fromisoformat(r[6]),
                origin=r[7],
            )
            for r in rows
        ]

    def save_webhook(self, hook: Webhook) -> None:
        self._db.execute(
            "INSERT INTO webhooks (id, url, events, queues, secret, active, created_at, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET url = excluded.url, "
            "events = excluded.events, queues = excluded.queues, secret = excluded.secret, "
            "active = excluded.active, origin = excluded.origin",
            (
                hook.id,
                hook.url,
                json.dumps(hook.events),
                json.dumps(hook.queues),
                hook.secret,
                int(hook.active),
                hook.created_at.isoformat(),
                hook.origin,
            ),
        )

    def delete_webhooks(self, ids: Sequence[str]) -> int:
        """Delete webhooks and their pending deliveries (failed ones stay for inspection)."""
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            count = self._db.execute(f"DELETE FROM webhooks WHERE id IN ({marks})", tuple(ids)).rowcount
            self._db.execute(f"DELETE FROM deliveries WHERE status = ? AND webhook_id IN ({marks})", (PENDING, *ids))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return count

    # ------------------------------------------------------------------ outbox
    def enqueue(self, rows: Iterable[tuple[str, str, bytes]], now: float) -> int:
        """Append ``(webhook_id, event, body)`` rows, due at once, in one transaction."""
        params = [(w, e, b, now, now) for w, e, b in rows]
        if not params:
            return 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO deliveries (webhook_id, event, body, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)",
                params,
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return len(params)

    def due(self, now: float, limit: int, exclude: Iterable[int]) -> tuple[list[Delivery], float | None]:
        """Up to ``limit`` pending deliveries due by ``now`` (oldest first), skipping ``exclude``;
        and the due time of the next pending delivery not returned, if any."""
        skip = tuple(exclude)
        not_in = f" AND id NOT IN ({','.join('?' * len(skip))})" if skip else ""
        rows = self._db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE status = ? AND next_attempt_at <= ?"
            f"{not_in} ORDER BY next_attempt_at, id LIMIT ?",
            (PENDING, now, *skip, limit),
        ).fetchall()
        taken = skip + tuple(r[0] for r in rows)
        not_in = f" AND id NOT IN ({','.join('?' * len(taken))})" if taken else ""
        nxt = self._db.execute(
            f"SELECT MIN(next_attempt_at) FROM deliveries WHERE status = ?{not_in}", (PENDING, *taken)
        ).fetchone()[0]
        return [_delivery(r) for r in rows], nxt

    def mark_delivered(self, delivery_id: int) -> None:
        # Delivered rows leave the outbox: it holds only work to do and failures to inspect.
        self._db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def mark_retry(self, delivery_id: int, attempts: int, next_at: float, error: str, status: int | None) -> None:
        self._db.execute(
            "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ?, last_status = ? "
            "WHERE id = ? AND status = ?",
            (attempts, next_at, error, status, delivery_id, PENDING),
        )

    def mark_failed(
        self, delivery_id: int, attempts: int, error: str, status: int | None, now: float, keep: int
    ) -> None:
        self._db.execute(
            "UPDATE deliveries SET status = ?, attempts = ?, last_error = ?, last_status = ?, "
            "finished_at = ? WHERE id = ?",
            (FAILED, attempts, error, status, now, delivery_id),
        )
        # Keep the newest ``keep`` failures (ids grow with time).
        self._db.execute(
            "DELETE FROM deliveries WHERE status = ? AND id <= "
            "(SELECT id FROM deliveries WHERE status = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (FAILED, FAILED, keep),
        )

    def list_deliveries(self, webhook_id: str | None, status: str | None, limit: int) -> list[Delivery]:
        clauses, params = [], []
        if webhook_id is not None:
            clauses.append("webhook_id = ?")
            params.append(webhook_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries{where} ORDER BY id DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [_delivery(r) for r in rows]

    def count_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
        return {status: count for status, count in rows}
