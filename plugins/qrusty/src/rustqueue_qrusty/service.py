"""qrusty operations over the engine, shared by the HTTP routes and the WebSocket sessions.

Every method takes already-decoded JSON, checks it, calls the engine once (batch-shaped where the
operation is) and returns plain JSON values, raising :class:`QrustyError` for anything the caller
got wrong or may retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple

from rustqueue_core.errors import DuplicateKey, JobNotFound, RustQueueError
from rustqueue_core.models import Job, JobOptions, NewJob, QueueConfig
from rustqueue_qrusty import model
from rustqueue_qrusty.memory import QRUSTY_LEVEL
from rustqueue_qrusty.model import QrustyError, bad_request, not_found
from rustqueue_qrusty.observe import SERIES_INTERVAL_S, OperationTimings, QueueSeries
from rustqueue_qrusty.settings import DEFAULT_LOCK_TIMEOUT_SECS

logger = logging.getLogger("rustqueue.qrusty")

#: Errors of ack / nack meaning "not found or not locked by this consumer" (qrusty's 404).
NOT_HELD = frozenset({"JOB_NOT_FOUND", "LEASE_LOST", "INVALID_STATE"})
MAX_BATCH_IDS = 10_000


class _Publish(NamedTuple):
    """A checked publish: the engine's ``push`` arguments."""

    queue: str
    payload: str
    options: dict[str, Any]


class _Timed:
    """The latency and outcome of one operation, recorded when its block exits."""

    __slots__ = ("operation", "started", "timings")

    def __init__(self, timings: OperationTimings, operation: str) -> None:
        self.timings = timings
        self.operation = operation
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.timings.record(self.operation, time.perf_counter() - self.started, ok=kind is None)
        if isinstance(exc, RustQueueError):
            raise model.from_engine_error(exc) from None


class QrustyService:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.timings = OperationTimings()
        self.series = QueueSeries()
        self._remove_listener = engine.add_listener(self.series.on_events)

    def close(self) -> None:
        self._remove_listener()

    def timed(self, operation: str) -> _Timed:
        """``with service.timed("publish"):`` records the block's latency and outcome; engine errors
        leave it as qrusty errors."""
        return _Timed(self.timings, operation)

    # ------------------------------------------------------------------ queues
    async def queue_config(self, queue: str) -> QueueConfig:
        """The queue's config; 404 when the queue does not exist (no config and no messages)."""
        if not await self.storage_readable():
            raise QrustyError(503, "STARTING", "server is starting", retry_after_s=2)
        config: QueueConfig = await self.engine.get_queue_config(queue)
        if config.created_at is None and (await self.engine.counts(queue)).total == 0:
            raise not_found(f"queue '{queue}' not found")
        return config

    async def create_queue(self, body: Any) -> dict[str, Any]:
        with self.timed("create_queue"):
            body = model.require_object(body)
            name = model.require_str(body, "name")
            config = body.get("config") or {}
            model.require_object(config, "config")
            if "name" in config:
                raise bad_request("config.name is only accepted by /update-queue")
            created = await self.engine.create_queue(name, **model.queue_settings(config))
            logger.info("queue %s created (%s)", name, model.config_object(created))
            return {"status": "created", "name": name, "config": model.config_object(created)}

    async def update_queue(self, body: Any) -> dict[str, Any]:
        with self.timed("update_queue"):
            body = model.require_object(body)
            name = model.require_str(body, "name")
            assert name is not None
            config = model.require_object(body.get("config"), "config")
            immutable = {"ordering", "priority_kind"} & set(config)
            if immutable:
                raise bad_request(f"{', '.join(sorted(immutable))} cannot change after creation")
            unknown = set(config) - {"name", "allow_duplicates"}
            if unknown:
                raise bad_request(f"unknown queue config field(s): {', '.join(sorted(unknown))}")
            if not config:
                raise bad_request("config must change name and/or allow_duplicates")
            await self.queue_config(name)
            new_name = model.require_str(config, "name", required=False)
            duplicates = config.get("allow_duplicates")
            if duplicates is not None and not isinstance(duplicates, bool):
                raise bad_request("allow_duplicates must be true or false")
            target = name
            if new_name is not None and new_name != name:
                await self.engine.rename_queue(name, new_name)
                self.series.rename(name, new_name)
                target = new_name
                logger.info("queue %s renamed to %s", name, new_name)
            if duplicates is not None:
                await self.engine.configure_queue(target, allow_duplicates=duplicates)
            updated = await self.engine.get_queue_config(target)
            return {"status": "updated", "name": target, "config": model.config_object(updated)}

    async def delete_queue(self, queue: str) -> dict[str, Any]:
        with self.timed("delete_queue"):
            deleted = await self.engine.delete_queue(queue)
            self.series.drop(queue)
            logger.info("queue %s deleted (%d messages)", queue, deleted)
            return {"status": "deleted", "queue": queue, "deleted": deleted}

    async def purge_queue(self, queue: str) -> dict[str, Any]:
        with self.timed("purge_queue"):
            purged = await self.engine.purge_queue(queue)
            logger.info("queue %s purged (%d messages)", queue, purged)
            return {"status": "purged", "queue": queue, "purged": purged}

    async def purge_all(self) -> dict[str, Any]:
        with self.timed("purge_all"):
            purged = await self.engine.purge_all()
            logger.info("all queues purged (%d messages)", purged)
            return {"status": "purged", "purged": purged}

    async def delete_all(self) -> dict[str, Any]:
        with self.timed("delete_all"):
            names = [info.name for info in await self.engine.queues()]
            deleted = await self.engine.delete_all()
            for name in names:
                self.series.drop(name)
            logger.info("all queues deleted (%d queues, %d messages)", len(names), deleted)
            return {"status": "deleted", "queues": len(names), "deleted": deleted}

    async def list_queues(self) -> list[str]:
        with self.timed("list_queues"):
            if not await self.storage_readable():
                return []
            return [info.name for info in await self.engine.queues()]

    async def storage_readable(self) -> bool:
        """False while the engine is starting and its storage is not open yet: reads stay open during
        recovery (QRUSTY-PROTOCOL §0.2) and answer empty until then."""
        if self.engine.state != "starting":
            return True
        try:
            await self.engine.counts("")
        except Exception:
            return False
        return True

    # ------------------------------------------------------------------ messages
    async def publish(self, body: Any) -> dict[str, Any]:
        with self.timed("publish"):
            return await self._push_one(await self._publish_item(body, {}))

    async def publish_many(self, bodies: Sequence[Any]) -> list[dict[str, Any] | QrustyError]:
        """Publish several messages in one storage transaction; one reply or error per body, in order.

        Each body is checked on its own (a bad one fails alone). The valid ones go to the engine as one
        atomic push (``push_jobs``); if that fails as a whole (a duplicate, a paused queue, ...), they are
        pushed one by one so that every message gets exactly the outcome a lone publish would."""
        started = time.perf_counter()
        outcomes: list[dict[str, Any] | QrustyError] = []
        pushes: list[tuple[int, _Publish]] = []
        configs: dict[str, QueueConfig | QrustyError] = {}
        quick = self._quick_item
        for index, body in enumerate(bodies):
            try:
                pushes.append((index, quick(body, configs) or await self._publish_item(body, configs)))
                outcomes.append({})
            except QrustyError as exc:
                outcomes.append(exc)
            except RustQueueError as exc:
                outcomes.append(model.from_engine_error(exc))
        if len(pushes) > 1:
            try:
                name = model.MESSAGE_JOB_NAME
                ids = await self.engine.push_jobs(
                    [NewJob(queue=q, name=name, data=payload, options=JobOptions(**o)) for _, (q, payload, o) in pushes]
                )
            except RustQueueError:
                pass  # atomic: nothing was stored; the loop below gives each message its own outcome
            else:
                for (index, _), job_id in zip(pushes, ids, strict=True):
                    outcomes[index] = {"id": job_id}
                pushes = []
        for index, item in pushes:
            try:
                outcomes[index] = await self._push_one(item)
            except QrustyError as exc:
                outcomes[index] = exc
            except RustQueueError as exc:
                outcomes[index] = model.from_engine_error(exc)
        failed = sum(1 for outcome in outcomes if isinstance(outcome, QrustyError))
        self.timings.record_many("publish", time.perf_counter() - started, len(outcomes), failed)
        return outcomes

    @staticmethod
    def _quick_item(body: Any, configs: dict[str, QueueConfig | QrustyError]) -> _Publish | None:
        """:meth:`_publish_item` in one step for the common body (a Numeric queue already looked up in
        this batch, a string payload, integer priority and max_retries in range or absent); None sends
        the body through the full checks, which give any error its usual message."""
        if type(body) is not dict:
            return None
        queue = body.get("queue")
        payload = body.get("payload")
        if type(queue) is not str or type(payload) is not str:
            return None
        config = configs.get(queue)
        if type(config) is not QueueConfig or config.priority_kind != "numeric":
            return None
        priority = body.get("priority")
        if priority is None:
            priority = 0
        elif type(priority) is not int or not 0 <= priority <= model.MAX_U64:
            return None
        retries = body.get("max_retries")
        if retries is None:
            retries = 3
        elif type(retries) is not int or not 0 <= retries < 2**32 - 1:
            return None
        return _Publish(queue, payload, model.publish_options(priority, retries))

    async def _publish_item(self, body: Any, configs: dict[str, QueueConfig | QrustyError]) -> _Publish:
        """One publish body checked against its queue (configs are looked up once per queue)."""
        body = model.require_object(body)
        queue = model.require_str(body, "queue")
        assert queue is not None
        payload = model.check_payload(body.get("payload"))
        config = configs.get(queue)
        if config is None:
            try:
                config = configs[queue] = await self.queue_config(queue)
            except QrustyError as exc:
                configs[queue] = exc
                raise
        if isinstance(config, QrustyError):
            raise config
        priority = body.get("priority")
        if priority is None:
            priority = "" if config.priority_kind == "text" else 0
        options = model.publish_options(
            model.check_priority(priority, config), model.check_max_retries(body.get("max_retries"))
        )
        return _Publish(queue, payload, options)

    async def _push_one(self, item: _Publish) -> dict[str, Any]:
        try:
            job_id = await self.engine.push(item.queue, model.MESSAGE_JOB_NAME, item.payload, **item.options)
        except DuplicateKey as dup:
            if dup.existing_id is None:
                raise QrustyError(409, "DUPLICATE", "an identical message is already queued") from None
            return {"id": dup.existing_id, "duplicate": True}
        return {"id": job_id}

    async def consume(self, queue: str, body: Any) -> dict[str, Any] | None:
        with self.timed("consume"):
            body = model.require_object({} if body is None else body)
            consumer_id = model.require_str(body, "consumer_id")
            timeout = body.get("timeout_seconds")
            if timeout is None:
                timeout = DEFAULT_LOCK_TIMEOUT_SECS
            if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= 86_400 * 7:
                raise bad_request("timeout_seconds must be a positive integer (at most 604800)")
            jobs: list[Job] = await self.engine.claim(queue, 1, consumer_id=consumer_id, lease_ms=timeout * 1000)
            if not jobs:
                await self.queue_config(queue)  # unknown queue: 404 rather than an empty answer
                return None
            return model.message_object(jobs[0])

    async def ack(self, queue: str, message_id: str, consumer_id: str) -> bool:
        """True when acked; False when not found or not locked by this consumer."""
        with self.timed("ack"):
            try:
                await self.engine.ack(message_id, consumer_id=consumer_id)
            except RustQueueError as exc:
                if exc.code in NOT_HELD:
                    return False
                raise
            return True

    async def nack(self, queue: str, message_id: str, consumer_id: str) -> dict[str, Any] | None:
        """``{"requeued"|"dropped"}`` outcome, or None when not found / not locked by this consumer."""
        with self.timed("nack"):
            try:
                result = await self.engine.nack(message_id, consumer_id=consumer_id, requeue=True)
            except RustQueueError as exc:
                if exc.code in NOT_HELD:
                    return None
                raise
            return {"status": "requeued" if result.will_retry else "dropped", "id": message_id}

    async def ack_batch(self, ids: Sequence[Any], consumer_id: str) -> dict[str, Any]:
        with self.timed("ack_batch"):
            clean = check_ids(ids)
            result = await self.engine.ack_batch(clean, consumer_id=consumer_id)
            return {"acked": result.ok, "failed": result.failed}

    async def nack_batch(self, ids: Sequence[Any], consumer_id: str) -> dict[str, Any]:
        with self.timed("nack_batch"):
            clean = check_ids(ids)
            result = await self.engine.nack_batch(clean, consumer_id=consumer_id, requeue=True)
            return {"unlocked": result.requeued, "dropped": result.dead, "failed": result.failed}

    async def renew(self, message_id: str, consumer_id: str, lease_ms: int) -> bool:
        with self.timed("renew"):
            try:
                await self.engine.renew(message_id, lease_ms, consumer_id=consumer_id)
            except RustQueueError as exc:
                if exc.code in NOT_HELD:
                    return False
                raise
            return True

    # ------------------------------------------------------------------ observability
    async def stats(self) -> dict[str, Any]:
        with self.timed("stats"):
            if not await self.storage_readable():
                summary = model.summary_object([])
                summary["memory"] = self.memory_status()
                return {"queues": [], "summary": summary, "status": "starting"}
            queues = [
                model.stats_object(s, await self.engine.get_queue_config(s.name)) for s in await self.engine.stats()
            ]
            summary = model.summary_object(queues)
            summary["memory"] = self.memory_status()
            summary["uptime_seconds"] = (await self.engine.health()).uptime_seconds
            return {"queues": queues, "summary": summary}

    async def queue_stats(self, queue: str) -> dict[str, Any]:
        with self.timed("queue_stats"):
            config = await self.queue_config(queue)
            stats = (await self.engine.stats(queue))[0]
            return model.stats_object(stats, config)

    async def queue_metrics(self, queue: str) -> dict[str, Any]:
        await self.queue_config(queue)
        return {"queue": queue, "interval_secs": SERIES_INTERVAL_S, "points": self.series.points(queue)}

    def memory_status(self) -> dict[str, Any]:
        monitor = getattr(self.engine, "memory_monitor", None)
        if monitor is None or not monitor.enabled:
            return {"enabled": False, "level": "normal"}
        return {
            "enabled": True,
            "level": QRUSTY_LEVEL.get(monitor.level, monitor.level),
            "used_bytes": monitor.last_bytes,
            "limit_bytes": monitor.limit,
        }

    async def get_message(self, message_id: str) -> Job:
        job: Job | None = await self.engine.get_job(message_id)
        if job is None:
            raise model.from_engine_error(JobNotFound(message_id))
        return job


def check_ids(ids: Any) -> list[str]:
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise bad_request("message ids must be a list of non-empty strings")
    if len(ids) > MAX_BATCH_IDS:
        raise bad_request(f"at most {MAX_BATCH_IDS} message ids per batch")
    return list(dict.fromkeys(ids))


def consumer_of(body: Any) -> str:
    body = model.require_object({} if body is None else body)
    consumer = model.require_str(body, "consumer_id")
    assert consumer is not None
    return consumer


def ids_of(body: Mapping[str, Any]) -> Any:
    return body.get("message_ids", body.get("ids"))
