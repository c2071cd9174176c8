"""The webhooks runtime of one engine: registry, outbox writer and delivery loop.

Path of an event: the engine calls :meth:`WebhookService.on_events` with a committed batch; it only
appends the batch to a bounded in-memory queue (never blocks, never awaits). The writer task drains
that queue, matches events against the registered webhooks and appends every resulting delivery
to the SQLite outbox in one transaction. The delivery loop sends due outbox rows with bounded
concurrency, retries with exponential backoff (the next attempt time is stored, so a restart keeps
the schedule) and marks a delivery failed after ``max_retries + 1`` attempts. Rows pending at shutdown
are sent after the next start: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from rustqueue_webhooks.config import StaticWebhook, WebhooksConfig
from rustqueue_webhooks.events import KIND_TO_EVENTS, delivery_body, dotted, validate_input
from rustqueue_webhooks.signature import SIGNATURE_HEADER, sign_body
from rustqueue_webhooks.store import Delivery, Webhook, WebhookStore

if TYPE_CHECKING:
    import httpx

    from rustqueue_core.models import JobEvent

log = logging.getLogger("rustqueue.webhooks")

P = ParamSpec("P")
T = TypeVar("T")

_SERVICES: weakref.WeakKeyDictionary[Any, WebhookService] = weakref.WeakKeyDictionary()


def service_for(engine: Any) -> WebhookService | None:
    """The running webhooks service of ``engine``, if the plugin is active for it."""
    return _SERVICES.get(engine)


def bind_service(engine: Any, service: WebhookService | None) -> None:
    if service is None:
        _SERVICES.pop(engine, None)
    else:
        _SERVICES[engine] = service


def new_webhook_id() -> str:
    """A UUIDv7 (48-bit Unix ms timestamp, version and variant bits, 74 random bits)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


def static_webhook_id(endpoint: StaticWebhook) -> str:
    if endpoint.id:
        return endpoint.id
    key = f"{endpoint.url}|{sorted(endpoint.events)}|{sorted(endpoint.queues)}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


class WebhookService:
    """Webhook registry and delivery for one engine. ``enabled=False`` keeps it inert: nothing is
    opened and the routes answer ``WEBHOOKS_DISABLED``."""

    def __init__(self, config: WebhooksConfig, store_path: str, *, transport: Any = None) -> None:
        self.config = config
        self.store_path = store_path
        self.delivered_total = 0
        self.failed_total = 0
        self.dropped_events_total = 0
        self.attempts_total = 0
        self._transport = transport
        self._webhooks: dict[str, Webhook] = {}
        self._store: WebhookStore | None = None
        self._client: httpx.AsyncClient | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[Sequence[JobEvent]] = asyncio.Queue(config.queue_size)
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._inflight_per_hook: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False
        self._stopping = False
        self._last_drop_log = 0.0

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def running(self) -> bool:
        return self._store is not None

    def health_problem(self) -> str | None:
        """Why the service cannot deliver, or None when its loops are alive."""
        for task in self._tasks:
            if task.done():
                return f"{task.get_name()} stopped"
        return None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if not self.enabled or self.running:
            return
        import httpx

        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rustqueue-webhooks")
        try:
            self._store = await self._run(WebhookStore, self.store_path)
            await self._run(self._sync_static_webhooks)
            self._webhooks = {h.id: h for h in await self._run(self._store.list_webhooks)}
        except BaseException:
            if self._store is not None:
                await self._run(self._store.close)
                self._store = None
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        limit = self.config.max_concurrency
        self._client = httpx.AsyncClient(
            transport=self._transport,
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            timeout=httpx.Timeout(self.config.delivery_timeout_ms / 1000),
            follow_redirects=False,
            headers={"User-Agent": "rustqueue-webhooks"},
        )
        self._accepting = True
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="rustqueue-webhooks-writer"),
            asyncio.create_task(self._dispatch_loop(), name="rustqueue-webhooks-dispatcher"),
        ]
        log.info("webhooks: %d registered, outbox %s", len(self._webhooks), self.store_path)

    async def stop(self, flush_timeout: float = 10.0) -> None:
        """Write buffered events to the outbox, stop sending, close. Rows still pending are sent
        after the next start."""
        if not self.running:
            return
        self._accepting = False
        try:
            await asyncio.wait_for(self._queue.join(), flush_timeout)
        except TimeoutError:
            log.error(
                "webhooks: outbox writer did not flush within %.1fs; %d batches lost",
                flush_timeout,
                self._queue.qsize(),
            )
        # Stop the loops first so that nothing new is launched, then cancel what is in flight (those
        # rows stay pending and are sent again after the next start).
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._inflight:
            inflight = list(self._inflight.values())
            for task in inflight:
                task.cancel()
            await asyncio.wait(inflight, timeout=1.0)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        store, self._store = self._store, None
        assert store is not None and self._executor is not None
        await asyncio.get_running_loop().run_in_executor(self._executor, store.close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking store call on the service's own thread."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _sync_static_webhooks(self) -> None:
        assert self._store is not None
        existing = {h.id: h for h in self._store.list_webhooks()}
        wanted: dict[str, Webhook] = {}
        for endpoint in self.config.endpoints:
            hook_id = static_webhook_id(endpoint)
            old = existing.get(hook_id)
            wanted[hook_id] = Webhook(
                id=hook_id,
                url=endpoint.url,
                events=validate_input(endpoint.url, endpoint.events, endpoint.secret),
                queues=list(endpoint.queues),
                secret=endpoint.secret,
                created_at=old.created_at if old else datetime.now(UTC),
                origin="config",
            )
        stale = [h.id for h in existing.values() if h.origin == "config" and h.id not in wanted]
        self._store.delete_webhooks(stale)
        for hook in wanted.values():
            self._store.save_webhook(hook)

    # ------------------------------------------------------------------ registry
    def list_webhooks(self) -> list[Webhook]:
        return list(self._webhooks.values())

    def get_webhook(self, webhook_id: str) -> Webhook | None:
        return self._webhooks.get(webhook_id)

    async def create_webhook(
        self, url: str, events: Sequence[str] = (), queues: Sequence[str] = (), secret: str | None = None
    ) -> Webhook:
        """Validate and persist a webhook. Raises ``WebhookInputError``."""
        hook = Webhook(
            id=new_webhook_id(),
            url=url,
            events=validate_input(url, events, secret),
            queues=list(dict.fromkeys(queues)),
            secret=secret,
            created_at=datetime.now(UTC),
        )
        assert self._store is not None, "webhooks service is not running"
        await self._run(self._store.save_webhook, hook)
        self._webhooks[hook.id] = hook
        return hook

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Delete a webhook and its pending deliveries; failed ones stay for inspection."""
        if webhook_id not in self._webhooks:
            return False
        assert self._store is not None
        self._webhooks.pop(webhook_id, None)
        await self._run(self._store.delete_webhooks, [webhook_id])
        return True

    async def list_deliveries(
        self, webhook_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        assert self._store is not None
        return await self._run(self._store.list_deliveries, webhook_id, status, limit)

    async def outbox_counts(self) -> dict[str, int]:
        assert self._store is not None
        return await self._run(self._store.count_by_status)

    # ------------------------------------------------------------------ intake (engine loop)
    def on_events(self, events: Sequence[JobEvent]) -> None:
        """Take one committed batch. Never blocks: when the buffer is full the batch is dropped,
        counted and logged."""
        if not self._accepting or not self._webhooks:
            return
        try:
            self._queue.put_nowait(events)
        except asyncio.QueueFull:
            self.dropped_events_total += len(events)
            now = time.monotonic()
            if now - self._last_drop_log > 10.0:
                self._last_drop_log = now
                log.warning(
                    "webhooks: event buffer full (%d batches); %d events dropped so far",
                    self.config.queue_size,
                    self.dropped_events_total,
                )

    async def flush(self) -> None:
        """Wait until every batch taken so far is in the outbox."""
        await self._queue.join()

    async def _write_loop(self) -> None:
        while True:
            batches = [await self._queue.get()]
            while len(batches) < 512:
                try:
                    batches.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            hooks = [h for h in self._webhooks.values() if h.active]
            try:
                written = await self._run(self._append, hooks, batches)
            except Exception:
                count = sum(len(b) for b in batches)
                self.dropped_events_total += count
                log.exception("webhooks: could not write %d events to the outbox", count)
                written = 0
            finally:
                for _ in batches:
                    self._queue.task_done()
            if written:
                self._wake.set()

    def _append(self, hooks: Sequence[Webhook], batches: Sequence[Sequence[JobEvent]]) -> int:
        """Match and append (on the store thread): one transaction for everything drained."""
        assert self._store is not None
        rows: list[tuple[str, str, bytes]] = []
        for batch in batches:
            for event in batch:
                types = KIND_TO_EVENTS.get(event.kind)
                if not types:
                    continue
                for hook in hooks:
                    if hook.queues and event.queue not in hook.queues:
                        continue
                    for event_type in types:
                        if hook.events and event_type not in hook.events:
                            continue
                        body = delivery_body(event_type, hook.id, event.timestamp, event.job_id, event.queue)
                        rows.append((hook.id, dotted(event_type), body))
        return self._store.enqueue(rows, time.time())

    # ------------------------------------------------------------------ delivery
    async def _dispatch_loop(self) -> None:
        per_hook = max(1, self.config.max_concurrency // 2)
        while not self._stopping:
            self._wake.clear()
            free = self.config.max_concurrency - len(self._inflight)
            next_due: float | None = None
            held_back = False
            if free > 0:
                assert self._store is not None
                try:
                    due, next_due = await self._run(self._store.due, time.time(), free * 4, list(self._inflight))
                except Exception:
                    log.exception("webhooks: could not read the outbox; retrying in 1s")
                    due, next_due, held_back = [], None, True
                for delivery in due:
                    if self._stopping:
                        return
                    if free == 0:
                        held_back = True
                        break
                    if self._inflight_per_hook[delivery.webhook_id] >= per_hook:
                        # One slow endpoint must not take every slot from the others.
                        held_back = True
                        continue
                    self._launch(delivery)
                    free -= 1
            if free <= 0 or held_back:
                timeout = 1.0  # a finishing delivery sets the wake event
            elif next_due is None:
                timeout = 5.0
            else:
                timeout = min(5.0, max(0.0, next_due - time.time()))
            # asyncio.timeout, unlike wait_for on 3.11, never loses a cancellation that races the wake.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _launch(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._attempt(delivery), name=f"rustqueue-webhook-delivery-{delivery.id}")
        self._inflight[delivery.id] = task
        self._inflight_per_hook[delivery.webhook_id] += 1

        def done(finished: asyncio.Task[None]) -> None:
            if not finished.cancelled() and finished.exception() is not None:
                # The row stays pending (or keeps its last state) and is picked up again.
                log.error("webhooks: delivery %d crashed", delivery.id, exc_info=finished.exception())
            self._inflight.pop(delivery.id, None)
            self._inflight_per_hook[delivery.webhook_id] -= 1
            if self._inflight_per_hook[delivery.webhook_id] <= 0:
                del self._inflight_per_hook[delivery.webhook_id]
            self._wake.set()

        task.add_done_callback(done)

    async def _attempt(self, delivery: Delivery) -> None:
        store, client = self._store, self._client
        assert store is not None and client is not None
        hook = self._webhooks.get(delivery.webhook_id)
        if hook is None:  # deleted while the row was queued
            await self._run(store.mark_delivered, delivery.id)
            return
        headers = {
            "Content-Type": "application/json",
            "X-RustQueue-Event": delivery.event,
            "X-RustQueue-Webhook-Id": hook.id,
        }
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign_body(hook.secret, delivery.body)
        timeout_s = self.config.delivery_timeout_ms / 1000
        status: int | None = None
        error: str | None = None
        self.attempts_total += 1
        try:
            # httpx timeouts bound each phase; the outer bound caps the whole attempt.
            async with asyncio.timeout(timeout_s):
                async with client.stream("POST", hook.url, content=delivery.body, headers=headers) as resp:
                    status = resp.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except TimeoutError:
            error = f"timed out after {self.config.delivery_timeout_ms} ms"
        except Exception as exc:  # any transport failure is a failed attempt
            import httpx

            if isinstance(exc, httpx.TimeoutException):
                error = f"timed out after {self.config.delivery_timeout_ms} ms"
            else:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = delivery.attempts + 1
        if error is None:
            await self._run(store.mark_delivered, delivery.id)
            self.delivered_total += 1
        elif attempts >= self.config.max_retries + 1:
            await self._run(
                store.mark_failed, delivery.id, attempts, error, status, time.time(), self.config.keep_failed
            )
            self.failed_total += 1
            log.error(
                "webhook %s: delivery %d of %s to %s failed after %d attempts: %s",
                hook.id,
                delivery.id,
                delivery.event,
                hook.url,
                attempts,
                error,
            )
        else:
            delay = self.config.retry_base_delay_ms * 2 ** (attempts - 1) / 1000
            await self._run(store.mark_retry, delivery.id, attempts, time.time() + delay, error, status)
            log.info(
                "webhook %s: attempt %d of delivery %d failed (%s); retrying in %.3fs",
                hook.id,
                attempts,
                delivery.id,
                error,
                delay,
            )
