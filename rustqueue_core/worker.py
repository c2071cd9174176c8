"""The worker runtime (SEMANTICS §7.3): claim, run handlers, heartbeat, settle, shut down gracefully.

``run_worker`` uses only the engine's public delivery methods (``claim``, ``ack``, ``fail``, ``nack``,
``heartbeat``, ``release``), so it drives an embedded engine and a remote client alike.

* Async handlers run as tasks; plain functions in a pool of ``concurrency`` threads.
* It claims only free slots plus ``prefetch`` (no hoarding) and long-polls with ``claim(wait=…)``.
* One batched heartbeat per interval (a third of the lease, 0.2 to 30 s) carries every held job's lease
  token; a job reported lost has its handler cancelled and its outcome discarded.
* ``timeout_ms`` is enforced locally; a thread that overruns keeps its slot until it really ends.
* Shutdown (event, SIGINT or SIGTERM): stop claiming, release prefetched jobs, wait ``grace_period``,
  then cancel what still runs and release those jobs without counting an attempt.

This module holds the public API; the loop itself is ``rustqueue_core.worker_runtime``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rustqueue_core.errors import LeaseLost, ValidationError
from rustqueue_core.models import Job, WorkerStats

if TYPE_CHECKING:
    from rustqueue_core.workflow import WorkerRegistry

__all__ = [
    "MAX_ERROR_BYTES",
    "DeadLetter",
    "Retry",
    "WorkerStats",
    "dispatch_next",
    "drain_workers",
    "format_error",
    "heartbeat_interval",
    "run_worker",
]

logger = logging.getLogger("rustqueue.worker")

#: Longest stored handler error, in UTF-8 bytes, before ``TRUNCATED_SUFFIX`` is appended.
MAX_ERROR_BYTES = 8192
TRUNCATED_SUFFIX = "…(truncated)"
DEFAULT_LEASE_MS = 30_000
MAX_CLAIM_BACKOFF = 5.0
#: Heartbeat answers meaning the job is no longer this delivery's to finish.
LOST_CODES = frozenset({"LEASE_LOST", "JOB_NOT_FOUND", "INVALID_STATE"})
#: How long a cancelled handler gets to unwind before its job is settled anyway.
UNWIND_TIMEOUT = 1.0
#: Bound on the settle calls (release) that follow a forced cancellation at shutdown.
SETTLE_TIMEOUT = 10.0

Handler = Callable[[Job], Any]
Middleware = Callable[[Job, Callable[[Job], Awaitable[Any]]], Awaitable[Any]]
ShutdownEvent = asyncio.Event | threading.Event


class Retry(Exception):
    """Raise from a handler to fail this delivery and retry after ``delay_ms`` (backoff when None)."""

    def __init__(self, delay_ms: int | None = None, reason: str | None = None) -> None:
        if delay_ms is not None and (isinstance(delay_ms, bool) or delay_ms < 0):
            raise ValueError("delay_ms must be a non-negative integer")
        self.delay_ms = None if delay_ms is None else int(delay_ms)
        self.reason = reason
        super().__init__(reason or "retry requested")


class DeadLetter(Exception):
    """Raise from a handler to send the job straight to the DLQ (``nack(requeue=False)``)."""

    def __init__(self, reason: str = "dead-lettered by handler") -> None:
        self.reason = reason
        super().__init__(reason)


def truncate_error(text: str) -> str:
    """Cut ``text`` to ``MAX_ERROR_BYTES`` of UTF-8 on a character boundary, marking the cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_ERROR_BYTES:
        return data.decode("utf-8")
    return data[:MAX_ERROR_BYTES].decode("utf-8", "ignore") + TRUNCATED_SUFFIX


def format_error(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` (or an error's own ``fail_reason``), truncated."""
    reason = getattr(exc, "fail_reason", None)
    text = reason if isinstance(reason, str) else f"{type(exc).__name__}: {exc}"
    return truncate_error(text)


def heartbeat_interval(lease_ms: int) -> float:
    """Seconds between heartbeats for a lease: a third of it, clamped to 0.05 to 30 s. The lower
    bound never exceeds half of a short lease, so one late heartbeat does not lose it."""
    return min(30.0, max(0.05, lease_ms / 3000.0))


def default_consumer_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def lease_items(pairs: Iterable[tuple[str, str | None]]) -> list[Any]:
    """Ids with their lease tokens, in the batched form the engine's heartbeat and release take."""
    return [{"id": job_id, "token": token} if token else job_id for job_id, token in pairs]


def lost_ids(result: Any) -> set[str]:
    """Ids a batch answer reports as no longer held by this delivery."""
    lost: set[str] = set()
    for item in getattr(result, "results", None) or ():
        if isinstance(item, Mapping):
            ok, code, job_id = item.get("ok"), item.get("error_code"), item.get("id")
        else:
            ok, code, job_id = item.ok, item.error_code, item.id
        if not ok and code in LOST_CODES and job_id:
            lost.add(str(job_id))
    return lost


async def drain_workers(engine: Any, grace: float = 30.0) -> None:
    """Stop every worker running on ``engine`` and wait for them (``RustQueue.close`` calls this
    before closing storage): each stops claiming, releases prefetched jobs, lets running handlers
    finish for at most ``grace`` seconds, then releases what is left."""
    from rustqueue_core.worker_runtime import worker_set

    workers = list(worker_set(engine))
    for worker in workers:
        worker.request_stop(grace)
    waits = [asyncio.ensure_future(w.finished.wait()) for w in workers]
    if waits:
        _, pending = await asyncio.wait(waits, timeout=grace + SETTLE_TIMEOUT + UNWIND_TIMEOUT)
        for waiter in pending:
            waiter.cancel()


async def run_worker(
    engine: Any,
    queue: str,
    handler: Handler | WorkerRegistry,
    *,
    concurrency: int = 1,
    prefetch: int = 0,
    lease_ms: int | None = None,
    poll_interval: float = 0.5,
    shutdown: ShutdownEvent | None = None,
    grace_period: float = 30.0,
    consumer_id: str | None = None,
) -> WorkerStats:
    """Process jobs of ``queue`` with ``handler`` until ``shutdown`` is set (or SIGINT/SIGTERM arrives,
    when running on the main thread), then shut down gracefully (SEMANTICS §7.3).

    ``handler(job)`` is an ``async def`` (run as a task) or a plain function (run in a pool of
    ``concurrency`` threads), or a :class:`WorkerRegistry`. Its return value is the ack result;
    raising fails the job (``Retry``/``DeadLetter`` choose how). ``shutdown`` may be an
    ``asyncio.Event`` or a ``threading.Event``.

    Returns ``WorkerStats``: ``processed`` outcomes settled, of which ``succeeded`` acked and
    ``failed`` failed, dead-lettered, timed out or lost their lease; ``released`` jobs were given
    back unstarted or unfinished at shutdown, without counting an attempt."""
    from rustqueue_core.workflow import WorkerRegistry

    if isinstance(handler, WorkerRegistry):
        handler.check_queue(queue)
    from rustqueue_core.worker_runtime import WorkerRuntime

    worker = WorkerRuntime(
        engine,
        queue,
        handler,
        concurrency=concurrency,
        prefetch=prefetch,
        lease_ms=lease_ms,
        poll_interval=poll_interval,
        shutdown=shutdown,
        grace_period=grace_period,
        consumer_id=consumer_id,
    )
    return await worker.run()


async def dispatch_next(engine: Any, queue: str, registry: WorkerRegistry | None = None) -> str | None:
    """Claim one job of ``queue`` and run it through the engine's worker registry (SEMANTICS §7.4).

    Returns the job id, or None when nothing was claimable. The job is acked with the processor's
    result; an error fails it and is re-raised. Routing is checked before claiming, and a claimed job
    no engine can process is failed, never left active.
    """
    from rustqueue_core.workflow import UnroutableJob

    registry = registry if registry is not None else getattr(engine, "worker_registry", None)
    if registry is None:
        raise ValidationError("Worker registry is not configured")
    registry.check_queue(queue)
    jobs = await engine.claim(queue, 1)
    if not jobs:
        return None
    job: Job = jobs[0]
    token = job.lease_token
    try:
        processor = registry.resolve(job)
    except UnroutableJob as exc:
        await engine.fail(job.id, exc.fail_reason, token=token)
        raise
    try:
        result = await _with_heartbeat(engine, job, processor.process(job))
    except LeaseLost:
        raise  # another delivery owns the job now: nothing of ours to settle
    except asyncio.CancelledError:
        await engine.release(job.id, token=token)
        raise
    except Exception as exc:
        try:
            await engine.fail(job.id, format_error(exc), token=token)
        except Exception as fail_exc:
            logger.error("job %s: failing it after %r failed too: %s", job.id, exc, format_error(fail_exc))
        raise
    await engine.ack(job.id, result, token=token)
    return job.id


async def _with_heartbeat(engine: Any, job: Job, work: Awaitable[Any]) -> Any:
    """Await ``work`` while renewing ``job``'s lease; a lost lease cancels it (raises LeaseLost)."""
    task = asyncio.ensure_future(work)
    interval = heartbeat_interval(job.lease_ms or DEFAULT_LEASE_MS)
    lost = False
    while True:
        done, _ = await asyncio.wait({task}, timeout=interval)
        if done:
            break
        try:
            answer = await engine.heartbeat(lease_items([(job.id, job.lease_token)]))
        except Exception as exc:
            logger.warning("heartbeat for job %s failed: %s", job.id, format_error(exc))
            continue
        if job.id in lost_ids(answer):
            lost = True
            task.cancel()
            await asyncio.wait({task}, timeout=UNWIND_TIMEOUT)
            break
    if lost:
        raise LeaseLost(job.id)
    return task.result()
