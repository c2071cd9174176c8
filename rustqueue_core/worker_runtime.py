"""The engine-facing loop behind ``run_worker``: one ``WorkerRuntime`` per running worker.

It tracks every held delivery (running or prefetched), claims free slots plus prefetch, renews
leases in one batched heartbeat, enforces ``timeout_ms``, settles outcomes with the lease token and
drains on shutdown. Only the engine's public delivery methods are used, so a remote engine works too.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import inspect
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from rustqueue_core.errors import Closed, ValidationError
from rustqueue_core.models import BatchResult, Job, WorkerInfo, WorkerStats
from rustqueue_core.signals import REPEAT_WINDOW_S, ShutdownSignals
from rustqueue_core.worker import (
    DEFAULT_LEASE_MS,
    MAX_CLAIM_BACKOFF,
    SETTLE_TIMEOUT,
    UNWIND_TIMEOUT,
    DeadLetter,
    Handler,
    Middleware,
    Retry,
    ShutdownEvent,
    default_consumer_id,
    format_error,
    heartbeat_interval,
    is_async_callable,
    lease_items,
    logger,
    lost_ids,
    truncate_error,
)

__all__ = ["WorkerRuntime", "worker_set"]


class _Delivery:
    """One claimed job held by this worker, from claim to settle."""

    __slots__ = ("claimed_at", "inner", "job", "stop", "task", "thread")

    def __init__(self, job: Job, claimed_at: float) -> None:
        self.job = job
        self.claimed_at = claimed_at
        self.task: asyncio.Task[None] | None = None
        self.inner: asyncio.Future[Any] | None = None
        self.thread: concurrent.futures.Future[Any] | None = None
        #: Why the handler was stopped from outside: "lease_lost", "timeout" or "shutdown".
        self.stop: str | None = None

    @property
    def token(self) -> str | None:
        return self.job.lease_token


class WorkerRuntime:
    """One running worker: its deliveries, slots, heartbeat and shutdown."""

    def __init__(
        self,
        engine: Any,
        queue: str,
        handler: Handler,
        *,
        concurrency: int,
        prefetch: int,
        lease_ms: int | None,
        poll_interval: float,
        shutdown: ShutdownEvent | None,
        grace_period: float,
        consumer_id: str | None,
    ) -> None:
        if concurrency < 1:
            raise ValidationError("concurrency must be at least 1")
        if prefetch < 0:
            raise ValidationError("prefetch must not be negative")
        if lease_ms is not None and lease_ms <= 0:
            raise ValidationError("lease_ms must be greater than zero")
        if poll_interval <= 0:
            raise ValidationError("poll_interval must be greater than zero")
        if grace_period < 0:
            raise ValidationError("grace_period must not be negative")
        if not callable(handler):
            raise ValidationError("handler must be callable")
        self.engine = engine
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.lease_ms = lease_ms
        self.poll_interval = poll_interval
        self.shutdown = shutdown
        self.grace_period = grace_period
        self.consumer_id = consumer_id or default_consumer_id()
        self.stats = WorkerStats()
        self._is_async = is_async_callable(handler)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._running: dict[str, _Delivery] = {}
        self._buffer: collections.deque[_Delivery] = collections.deque()
        self._zombie_threads = 0  # timed-out plain functions still running: they keep their slot
        self._stop = asyncio.Event()
        self.finished = asyncio.Event()
        self._force = asyncio.Event()
        self._signals = ShutdownSignals()
        self._wake = asyncio.Event()
        self._beat_changed = asyncio.Event()
        self._chain: Callable[[Job], Awaitable[Any]] = self._call_handler

    # ------------------------------------------------------------------ setup
    def _compose_middleware(self) -> None:
        host = getattr(self.engine, "host", None)
        if host is None or not hasattr(host, "worker_middleware"):
            return
        info = WorkerInfo(queue=self.queue, consumer_id=self.consumer_id, concurrency=self.concurrency)
        middlewares = [m for m in (host.worker_middleware(self.queue, info) or ()) if m is not None]
        call: Callable[[Job], Awaitable[Any]] = self._call_handler
        for middleware in reversed(middlewares):
            call = _wrap_middleware(middleware, call)
        self._chain = call

    async def _call_handler(self, job: Job) -> Any:
        if self._is_async:
            return await self.handler(job)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix=f"rustqueue-{self.queue}"
            )
        context = contextvars.copy_context()
        thread = self._pool.submit(context.run, self.handler, job)
        delivery = self._running.get(job.id)
        if delivery is not None:
            delivery.thread = thread
        result = await asyncio.wrap_future(thread)
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            result = await result
        return result

    # ------------------------------------------------------------------ main
    async def run(self) -> WorkerStats:
        self._compose_middleware()
        workers = worker_set(self.engine)
        workers.add(self)
        restore_signals = self._install_signal_handlers()
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"rustqueue-heartbeat-{self.queue}")
        watcher = asyncio.create_task(self._watch_shutdown()) if self.shutdown is not None else None
        try:  # every exit path below stops the heartbeat, restores signals and unregisters
            try:
                await self._claim_loop()
                await self._drain(grace=self.grace_period)
            except asyncio.CancelledError:
                # Cancelled while running or while draining: release everything still held, now.
                await self._drain(grace=0.0)
                raise
        finally:
            for task in (heartbeat, watcher):
                if task is not None:
                    task.cancel()
            await asyncio.gather(heartbeat, *(t for t in (watcher,) if t is not None), return_exceptions=True)
            restore_signals()
            if self._pool is not None:
                # Overrunning threads cannot be interrupted; their late outcomes are discarded.
                self._pool.shutdown(wait=False, cancel_futures=True)
            workers.discard(self)
            self.finished.set()
        return self.stats

    def request_stop(self, grace: float | None = None) -> None:
        """Begin a graceful shutdown; a second request skips what is left of the grace period.
        ``grace`` can only shorten the worker's own ``grace_period``."""
        if grace is not None:
            self.grace_period = min(self.grace_period, max(0.0, grace))
        if self._stop.is_set():
            self._force.set()
        self._stop.set()
        self._wake.set()

    def _engine_closing(self) -> bool:
        return getattr(self.engine, "state", None) in ("draining", "closed")

    def _free_slots(self) -> int:
        return self.concurrency - len(self._running) - self._zombie_threads

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.0
        while not self._stop.is_set():
            free = self._free_slots()
            while free > 0 and self._buffer:
                self._start(self._buffer.popleft())
                free -= 1
            want = max(free, 0) + self.prefetch - len(self._buffer)
            if want <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            started = loop.time()
            try:
                jobs = await self.engine.claim(
                    self.queue,
                    want,
                    consumer_id=self.consumer_id,
                    lease_ms=self.lease_ms,
                    wait=self.poll_interval,
                )
            except Closed:
                logger.info("worker on %r stops: the engine is closed", self.queue)
                self._stop.set()
                break
            except Exception as exc:
                backoff = min(MAX_CLAIM_BACKOFF, max(0.1, backoff * 2))
                logger.warning("claim on %r failed (%s); retrying in %.1f s", self.queue, format_error(exc), backoff)
                await self._sleep_unless_stopped(backoff)
                continue
            backoff = 0.0
            if not jobs and self._engine_closing():
                logger.info("worker on %r stops: the engine is shutting down", self.queue)
                self._stop.set()
                break
            now = loop.time()
            for job in jobs:
                delivery = _Delivery(job, now)
                if free > 0 and not self._stop.is_set():
                    self._start(delivery)
                    free -= 1
                else:
                    self._buffer.append(delivery)
            if jobs:
                self._beat_changed.set()
            elif loop.time() - started < self.poll_interval / 2:
                # The engine answered at once instead of long-polling: wait before asking again.
                await self._sleep_unless_stopped(self.poll_interval)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _watch_shutdown(self) -> None:
        event = self.shutdown
        if isinstance(event, asyncio.Event):
            await event.wait()
        else:
            assert event is not None
            while not event.is_set():  # noqa: ASYNC110 - a thread-side event cannot be awaited
                await asyncio.sleep(0.05)
        self._stop.set()
        self._wake.set()

    # ------------------------------------------------------------------ one delivery
    def _start(self, delivery: _Delivery) -> None:
        self._running[delivery.job.id] = delivery
        delivery.task = asyncio.create_task(self._deliver(delivery), name=f"rustqueue-job-{delivery.job.id}")

    async def _deliver(self, delivery: _Delivery) -> None:
        try:
            kind, value = await self._invoke(delivery)
            await self._settle(delivery, kind, value)
        finally:
            self._running.pop(delivery.job.id, None)
            thread = delivery.thread
            if thread is not None and not thread.done():
                self._hold_slot_until_done(thread)
            self._wake.set()

    def _hold_slot_until_done(self, thread: concurrent.futures.Future[Any]) -> None:
        loop = asyncio.get_running_loop()
        self._zombie_threads += 1

        def release_slot() -> None:
            self._zombie_threads -= 1
            self._wake.set()

        def on_done(_: concurrent.futures.Future[Any]) -> None:
            try:
                loop.call_soon_threadsafe(release_slot)
            except RuntimeError:  # the loop is gone: nobody needs the slot any more
                pass

        thread.add_done_callback(on_done)

    async def _invoke(self, delivery: _Delivery) -> tuple[str, Any]:
        """Run the handler chain; returns ("ok", result), ("error", exc) or (stop reason, None)."""
        job = delivery.job
        inner = delivery.inner = asyncio.ensure_future(self._chain(job))
        timeout: float | None = None
        if job.timeout_ms:
            elapsed = asyncio.get_running_loop().time() - delivery.claimed_at
            timeout = max(0.0, job.timeout_ms / 1000.0 - elapsed)
        try:
            done, _ = await asyncio.wait({inner}, timeout=timeout)
        except asyncio.CancelledError:
            inner.cancel()
            raise
        if not done:
            delivery.stop = delivery.stop or "timeout"
            inner.cancel()
            await asyncio.wait({inner}, timeout=UNWIND_TIMEOUT)
        if delivery.stop is not None:
            if not inner.done():
                inner.add_done_callback(_consume_result)
            else:
                _consume_result(inner)
            return delivery.stop, None
        if inner.cancelled():
            return "error", asyncio.CancelledError("handler was cancelled")
        exc = inner.exception()
        if exc is not None:
            return "error", exc
        return "ok", inner.result()

    async def _settle(self, delivery: _Delivery, kind: str, value: Any) -> None:
        job, token, engine = delivery.job, delivery.token, self.engine
        if kind == "shutdown":
            await self._release([delivery])
            return
        self.stats.processed += 1
        try:
            if kind == "ok":
                try:
                    await engine.ack(job.id, value, token=token)
                except (TypeError, msgspec.EncodeError, ValidationError) as exc:
                    # The result cannot be stored: fail the delivery rather than leave it to expire.
                    self.stats.failed += 1
                    await engine.fail(job.id, format_error(exc), token=token)
                    logger.warning("job %s: result could not be stored: %s", job.id, exc)
                    return
                self.stats.succeeded += 1
                return
            self.stats.failed += 1
            if kind == "lease_lost":
                logger.warning("job %s: lease lost; handler cancelled, outcome discarded", job.id)
            elif kind == "timeout":
                logger.warning("job %s timed out after %s ms", job.id, job.timeout_ms)
                await engine.fail(job.id, "job timed out", token=token)
            elif isinstance(value, Retry):
                text = truncate_error(f"Retry: {value.reason}" if value.reason else "Retry requested")
                await engine.fail(job.id, text, token=token, retry_delay_ms=value.delay_ms)
            elif isinstance(value, DeadLetter):
                await engine.nack(job.id, token=token, requeue=False, reason=truncate_error(value.reason))
            else:
                logger.warning("job %s (%s) failed", job.id, job.name, exc_info=value)
                await engine.fail(job.id, format_error(value), token=token)
        except Exception as exc:
            logger.error("job %s: settling the %s outcome failed: %s", job.id, kind, format_error(exc))

    async def _release(self, deliveries: Sequence[_Delivery]) -> None:
        if not deliveries:
            return
        try:
            if len(deliveries) == 1:
                only = deliveries[0]
                await self.engine.release(only.job.id, token=only.token)
            else:
                await self.engine.release(lease_items((d.job.id, d.token) for d in deliveries))
            self.stats.released += len(deliveries)
        except Exception as exc:
            logger.error("releasing %d job(s) failed: %s", len(deliveries), format_error(exc))

    # ------------------------------------------------------------------ heartbeats
    def _held(self) -> list[_Delivery]:
        held = [d for d in self._running.values() if d.stop is None]
        held.extend(d for d in self._buffer if d.stop is None)
        return held

    def _beat_interval(self, held: Sequence[_Delivery]) -> float:
        leases = [d.job.lease_ms for d in held if d.job.lease_ms]
        lease = self.lease_ms or (min(leases) if leases else DEFAULT_LEASE_MS)
        return heartbeat_interval(lease)

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            held = self._held()
            delay = last + self._beat_interval(held) - loop.time()
            if delay > 0 or not held:
                # Sleep until due, waking early when new jobs arrive (their lease may be shorter).
                self._beat_changed.clear()
                try:
                    await asyncio.wait_for(self._beat_changed.wait(), max(delay, 0.05))
                except TimeoutError:
                    pass
                if not held:
                    last = loop.time()
                continue
            last = loop.time()
            await self._beat(held)

    async def _beat(self, held: Sequence[_Delivery]) -> None:
        try:
            result: BatchResult = await self.engine.heartbeat(lease_items((d.job.id, d.token) for d in held))
        except Exception as exc:
            logger.warning("heartbeat for %d job(s) failed: %s", len(held), format_error(exc))
            return
        lost = lost_ids(result)
        if not lost:
            return
        for delivery in held:
            if delivery.job.id not in lost or delivery.stop is not None:
                continue
            delivery.stop = "lease_lost"
            if delivery.inner is not None:
                delivery.inner.cancel()
            elif delivery in self._buffer:
                self._buffer.remove(delivery)
                logger.warning("prefetched job %s: lease lost before it started", delivery.job.id)
                self._wake.set()

    # ------------------------------------------------------------------ shutdown
    async def _drain(self, grace: float) -> None:
        buffered = [d for d in self._buffer if d.stop is None]
        self._buffer.clear()
        await self._release(buffered)
        tasks = [d.task for d in self._running.values() if d.task is not None]
        if tasks and grace > 0:
            logger.info("worker on %r: waiting up to %.1f s for %d job(s)", self.queue, grace, len(tasks))
            all_done = asyncio.ensure_future(asyncio.wait(tasks))
            force = asyncio.ensure_future(self._force.wait())
            try:
                await asyncio.wait({all_done, force}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Cancelling these waiters leaves the delivery tasks themselves running.
                all_done.cancel()
                force.cancel()
        remaining = list(self._running.values())
        for delivery in remaining:
            delivery.stop = "shutdown"
            if delivery.inner is not None:
                delivery.inner.cancel()
        pending = [d.task for d in remaining if d.task is not None]
        if pending:
            logger.info("worker on %r: releasing %d unfinished job(s)", self.queue, len(pending))
            await asyncio.wait(pending, timeout=SETTLE_TIMEOUT + UNWIND_TIMEOUT)

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> Callable[[], None]:
        """SIGINT and SIGTERM request a graceful stop while this worker runs (main thread only).
        Returns a function that puts the previous handlers back, including ones an application
        registered on the loop itself."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        loop_handlers: dict[int, Any] = getattr(loop, "_signal_handlers", None) or {}
        previous: dict[signal.Signals, tuple[Any, Any]] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                before = (signal.getsignal(sig), loop_handlers.get(sig))
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            previous[sig] = before

        def restore() -> None:
            for sig, (handler, loop_handle) in previous.items():
                try:
                    loop.remove_signal_handler(sig)
                    if loop_handle is not None:
                        loop.add_signal_handler(sig, loop_handle._callback, *loop_handle._args)
                    elif handler is not None:
                        signal.signal(sig, handler)
                except (RuntimeError, ValueError, AttributeError):
                    pass

        return restore

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._signals.classify(sig) == "same":
            logger.info("worker on %r: %s again within %.1f s: the same request", self.queue, sig.name, REPEAT_WINDOW_S)
            return
        logger.info("worker on %r: %s received, shutting down", self.queue, sig.name)
        self.request_stop()


def worker_set(engine: Any) -> set[WorkerRuntime]:
    """The workers running on ``engine``, kept on the engine itself (the core has no global state)."""
    workers: set[WorkerRuntime] | None = getattr(engine, "_rustqueue_workers", None)
    if workers is None:
        workers = set()
        try:
            engine._rustqueue_workers = workers
        except AttributeError:  # an engine object that takes no attributes: nothing will drain it
            pass
    return workers


def _consume_result(future: asyncio.Future[Any]) -> None:
    """Mark a discarded handler outcome as retrieved, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _wrap_middleware(
    middleware: Middleware, call_next: Callable[[Job], Awaitable[Any]]
) -> Callable[[Job], Awaitable[Any]]:
    async def call(job: Job) -> Any:
        return await middleware(job, call_next)

    return call
