"""Transactional enqueue: push jobs inside the caller's own SQLAlchemy transaction.

The jobs go through the engine's push pipeline (validation, defaults, pause, rate limit, dedup,
dependencies) and are inserted on the caller's ``AsyncConnection``: they become visible, claimable
and announced (NOTIFY) only when the caller commits, and vanish with a rollback. Engine events
(``job.pushed``) are emitted when the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from rustqueue_core.errors import RustQueueError
from rustqueue_core.models import JobOptions, NewJob
from rustqueue_core.storage import InsertConflict
from rustqueue_postgres.storage import PostgresStorage

if TYPE_CHECKING:
    from rustqueue_core.pushing import PreparedPush

_UNSET: Any = object()


def _storage_of(rq: Any) -> PostgresStorage:
    storage = getattr(rq, "storage", None)
    if not isinstance(storage, PostgresStorage):
        raise RustQueueError("transactional enqueue needs an engine running on the postgres storage")
    return storage


def _items(queue: str | None, jobs: Sequence[NewJob | Mapping[str, Any]]) -> list[NewJob]:
    from rustqueue_core.pushing import new_job_from_mapping

    items: list[NewJob] = []
    for index, item in enumerate(jobs):
        if isinstance(item, NewJob):
            items.append(
                item
                if item.queue or not queue
                else NewJob(queue=queue, name=item.name, data=item.data, options=item.options)
            )
        else:
            items.append(new_job_from_mapping(item, queue, index))
    return items


def _on_commit(connection: AsyncConnection, prepared: PreparedPush) -> None:
    """The engine's after-insert effects when the caller's transaction commits, or the rate tokens
    given back when it rolls back (``PreparedPush`` makes the first of the two win)."""
    sync = connection.sync_connection
    assert sync is not None
    event.listen(sync, "commit", lambda _conn: prepared.committed())
    event.listen(sync, "rollback", lambda _conn: prepared.abandoned())


async def push_batch_in_transaction(
    rq: Any,
    connection: AsyncConnection,
    jobs: Sequence[NewJob | Mapping[str, Any]],
    *,
    queue: str | None = None,
) -> list[str]:
    """Push many jobs inside ``connection``'s open transaction; ids in input order.

    ``jobs`` items are ``NewJob`` or mappings ``{"name", "data"?, "options"?}`` as for
    ``RustQueue.push_batch``. Raises the engine's errors (``ValidationError``, ``QueuePaused``,
    ``RateLimited``, ``DuplicateKey``...) before anything is written.
    """
    storage = _storage_of(rq)
    items = _items(queue, jobs)
    if not items:
        return []
    prepared = await rq.prepare_push(items)
    try:
        await storage.insert_jobs(prepared.jobs, prepared.now, connection=connection)
    except InsertConflict as conflict:
        raise prepared.conflict(conflict) from None
    except BaseException:
        prepared.abandoned()
        raise
    _on_commit(connection, prepared)
    return prepared.ids


async def push_in_transaction(
    rq: Any, connection: AsyncConnection, queue: str, name: str, data: Any = _UNSET, **options: Any
) -> str:
    """Push one job inside ``connection``'s open transaction; keywords are ``JobOptions`` keys.

    Example::

        async with app_engine.begin() as conn:
            await conn.execute(orders.insert().values(id=order_id, total=42))
            await push_in_transaction(rq, conn, "emails", "order-confirmation", {"order": order_id})
        # committed together: the job exists exactly when the order does
    """
    from rustqueue_core.validation import options_from_mapping

    opts = options_from_mapping(options, strict=True) if options else JobOptions()
    item = NewJob(queue=queue, name=name, data={} if data is _UNSET else data, options=opts)
    return (await push_batch_in_transaction(rq, connection, [item]))[0]
