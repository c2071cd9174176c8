"""qrusty's WebSocket protocol at ``/ws``: one :class:`WsSession` per connection.

Requests are JSON objects with a ``type`` and usually a ``req_id``; every reply and error echoes the
``req_id`` (frames without one are served too). Each subscription runs one delivery task that
long-polls ``engine.claim`` for as many messages as the subscription may take, locks them to this
session (its consumer id) and pushes ``deliver`` frames. Without ``credit`` frames a subscription keeps
up to ``AUTO_WINDOW`` unacknowledged messages in flight; the first ``credit`` frame switches it to
credit mode, where each push spends one credit. Messages still unacknowledged when the session ends
are released back to their queues at once.

Frames are read as they arrive. Publishes go to one publisher task, which stores all the publishes
read while its previous batch was being stored in one engine call (one transaction); every other
frame is served in arrival order by a request task. Replies are matched by ``req_id``, so a publish
reply may overtake the reply to an earlier frame of another kind; publishes keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

import msgspec

from rustqueue_core.errors import Closed, NotReady, RustQueueError
from rustqueue_qrusty import model
from rustqueue_qrusty.model import QrustyError, bad_request
from rustqueue_qrusty.service import check_ids
from rustqueue_qrusty.wsprotocol import RAW_EXTENSION, CoalescingWebSocketProtocol

if TYPE_CHECKING:
    from litestar import WebSocket

    from rustqueue_core.models import Job
    from rustqueue_qrusty.logstream import LogHub
    from rustqueue_qrusty.service import QrustyService

logger = logging.getLogger("rustqueue.qrusty.ws")

AUTO_WINDOW = 256
MAX_CLAIM = 256
MAX_CREDITS = 1_000_000
LONG_POLL_S = 5.0
#: Pause between the subscribe reply and the first push: the client registers its delivery queue
#: only once it has read the reply, and pushes arriving before that would be dropped by it.
SUBSCRIBE_GRACE_S = 0.05
MAX_LOCK_SECS = 7 * 86_400
#: Frames read ahead of their handling, at most (beyond it the peer waits on TCP flow control).
MAX_INBOUND = 4096
#: Publishes stored in one engine call, at most.
MAX_PUBLISH_BATCH = 512
_MUTATING = frozenset({"publish", "ack", "nack", "batch-ack", "batch-nack", "renew"})
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def _lock_ms(frame: dict[str, Any]) -> int:
    secs = frame.get("lock_timeout_secs")
    if secs is None:
        return model_lock_default_ms()
    if isinstance(secs, bool) or not isinstance(secs, int) or not 0 < secs <= MAX_LOCK_SECS:
        raise bad_request(f"lock_timeout_secs must be a positive integer up to {MAX_LOCK_SECS}")
    return secs * 1000


def model_lock_default_ms() -> int:
    from rustqueue_qrusty.settings import DEFAULT_LOCK_TIMEOUT_SECS

    return DEFAULT_LOCK_TIMEOUT_SECS * 1000


class Subscription:
    def __init__(self, session: WsSession, queue: str, lock_ms: int) -> None:
        self.session = session
        self.queue = queue
        self.lock_ms = lock_ms
        self.credits: int | None = None
        self.in_flight = 0
        self.changed = asyncio.Event()
        self.stopped = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def window(self) -> int:
        if self.credits is None:
            if self.in_flight >= AUTO_WINDOW:
                self.in_flight = self.session.count_live(self.queue)
            return AUTO_WINDOW - self.in_flight
        return self.credits

    def grant(self, credits: int) -> None:
        self.credits = min(MAX_CREDITS, (self.credits or 0) + credits)
        self.changed.set()

    def settled(self, n: int) -> None:
        self.in_flight = max(0, self.in_flight - n)
        self.changed.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"qrusty-subscription-{self.queue}")

    async def stop(self) -> None:
        self.stopped.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    async def _wait_change(self) -> None:
        self.changed.clear()
        await _first(self.changed.wait(), self.stopped.wait())

    async def _run(self) -> None:
        session = self.session
        engine = session.service.engine
        await _first(asyncio.sleep(SUBSCRIBE_GRACE_S), self.stopped.wait())
        while not self.stopped.is_set():
            want = min(self.window(), MAX_CLAIM)
            if want <= 0:
                await self._wait_change()
                continue
            claim = asyncio.ensure_future(
                engine.claim(self.queue, want, consumer_id=session.consumer_id, lease_ms=self.lock_ms, wait=LONG_POLL_S)
            )
            stop = asyncio.ensure_future(self.stopped.wait())
            await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not claim.done():
                # Stopped mid-poll: whatever the claim still returns goes straight back to the queue.
                claim.add_done_callback(session.release_late_claim)
                return
            try:
                jobs: list[Job] = claim.result()
            except NotReady:
                await _first(asyncio.sleep(0.5), self.stopped.wait())
                continue
            except Closed:
                return
            except RustQueueError:
                logger.exception("delivery from %s failed", self.queue)
                await _first(asyncio.sleep(1.0), self.stopped.wait())
                continue
            if not jobs:
                if engine.state != "ready":
                    await _first(asyncio.sleep(0.5), self.stopped.wait())
                continue
            if self.stopped.is_set():
                await session.release([j.id for j in jobs])
                return
            if self.credits is not None:
                self.credits = max(0, self.credits - len(jobs))
            self.in_flight += len(jobs)
            session.delivered(self.queue, jobs)


async def _first(*awaitables: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class WsSession:
    def __init__(self, service: QrustyService, socket: WebSocket[Any, Any, Any], logs: LogHub | None) -> None:
        self.service = service
        self.socket = socket
        self.logs = logs
        self.consumer_id = f"ws-{uuid.uuid4()}"
        self.subscriptions: dict[str, Subscription] = {}
        #: message id → (queue, monotonic lock expiry) of deliveries not yet settled.
        self.in_flight: dict[str, tuple[str, float]] = {}
        #: Encoded frames waiting for the writer (None ends it).
        self._out: deque[bytes | None] = deque()
        self._out_ready = asyncio.Event()
        #: Frames read but not yet handled: publishes (batched) and the rest (in order).
        self._publishes: deque[dict[str, Any]] = deque()
        self._publish_ready = asyncio.Event()
        self._requests: deque[dict[str, Any]] = deque()
        self._request_ready = asyncio.Event()
        self._backlog = 0
        self._room = asyncio.Event()
        self._reading = True
        self._log_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._log_task: asyncio.Task[None] | None = None
        #: The connection's protocol when it offers the direct path (wsprotocol), else None.
        self._raw: CoalescingWebSocketProtocol | None = None
        self._closed = False
        self._tasks: set[asyncio.Future[None]] = set()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "ack": self._ack,
            "nack": self._nack,
            "batch-ack": self._batch_ack,
            "batch-nack": self._batch_nack,
            "credit": self._credit,
            "renew": self._renew,
            "subscribe-logs": self._subscribe_logs,
            "unsubscribe-logs": self._unsubscribe_logs,
        }

    # ------------------------------------------------------------------ connection
    async def run(self) -> None:
        await self.socket.accept()
        extensions: dict[str, Any] = cast(dict[str, Any], self.socket.scope.get("extensions") or {})
        raw = extensions.get(RAW_EXTENSION)
        self._raw = raw if isinstance(raw, CoalescingWebSocketProtocol) else None
        writer = asyncio.create_task(self._writer(), name="qrusty-ws-writer")
        publisher = asyncio.create_task(self._publisher(), name="qrusty-ws-publisher")
        requests = asyncio.create_task(self._request_loop(), name="qrusty-ws-requests")
        receive = self.socket.receive
        try:
            if self._raw is not None:
                # Messages go straight to _accept_frame; only disconnects arrive through receive().
                self._raw.attach(self._accept_frame)
            while not self._closed:
                if self._raw is None and self._backlog >= MAX_INBOUND:
                    # Read no further ahead than this: the peer's sends then wait on TCP flow control.
                    self._room.clear()
                    await self._room.wait()
                    continue
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                text = message.get("text")
                self._accept_frame(text if text is not None else message.get("bytes") or b"")
        except Exception as exc:  # a peer vanishing mid-send is the normal way for sessions to end
            logger.debug("websocket session %s ended: %r", self.consumer_id, exc)
        finally:
            # Frames already read are still handled (their effects stand as if served one by one);
            # their replies are dropped once the socket is gone.
            self._reading = False
            self._publish_ready.set()
            self._request_ready.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(publisher, requests)
            self._closed = True
            await self._shutdown()
            self._out.append(None)
            self._out_ready.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 2.0)

    def _accept_frame(self, raw: str | bytes) -> bool:
        """Route one inbound frame: publishes to the publisher (batched), everything else to the request
        loop (served one at a time, in order). Replies are matched by ``req_id``, so a publish reply may
        overtake the reply of an earlier frame of another kind. False once ``MAX_INBOUND`` frames wait."""
        if not self._reading:
            return False
        try:
            frame = _decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            self._error(None, bad_request("frame is not valid JSON"))
            return self._backlog < MAX_INBOUND
        if not isinstance(frame, dict):
            self._error(None, bad_request("frame must be a JSON object"))
            return self._backlog < MAX_INBOUND
        self._backlog += 1
        if frame.get("type") == "publish":
            self._publishes.append(frame)
            self._publish_ready.set()
        else:
            self._requests.append(frame)
            self._request_ready.set()
        return self._backlog < MAX_INBOUND

    def _taken(self, n: int) -> None:
        self._backlog -= n
        if self._backlog < MAX_INBOUND:
            self._room.set()
            if self._raw is not None:
                self._raw.resume_reading()

    async def _publisher(self) -> None:
        """Publishes read while the previous batch was being stored go to the engine together: one
        storage transaction for all of them (group commit), with a reply or error for each."""
        pending = self._publishes
        while True:
            if not pending:
                if not self._reading:
                    return
                self._publish_ready.clear()
                await self._publish_ready.wait()
                continue
            n = min(len(pending), MAX_PUBLISH_BATCH)
            batch = [pending.popleft() for _ in range(n)]
            self._taken(n)
            await self._publish_batch(batch)

    async def _publish_batch(self, frames: list[dict[str, Any]]) -> None:
        try:
            if self.service.engine.state == "starting":
                raise QrustyError(503, "STARTING", "server is starting; retry shortly", retry_after_s=2)
            outcomes = await self.service.publish_many(frames)
        except QrustyError as exc:
            for frame in frames:
                self._error(frame.get("req_id"), exc)
            return
        except Exception as exc:
            logger.exception("websocket publish failed")
            internal = QrustyError(500, "INTERNAL", f"{type(exc).__name__}: {exc}")
            for frame in frames:
                self._error(frame.get("req_id"), internal)
            return
        for frame, outcome in zip(frames, outcomes, strict=True):
            if isinstance(outcome, QrustyError):
                self._error(frame.get("req_id"), outcome)
            else:
                self._reply("publish", frame.get("req_id"), outcome)

    async def _request_loop(self) -> None:
        pending = self._requests
        while True:
            if not pending:
                if not self._reading:
                    return
                self._request_ready.clear()
                await self._request_ready.wait()
                continue
            frame = pending.popleft()
            self._taken(1)
            await self._handle(frame)

    async def _shutdown(self) -> None:
        await asyncio.gather(*(sub.stop() for sub in self.subscriptions.values()), return_exceptions=True)
        self.subscriptions.clear()
        self._stop_logs()
        if self.in_flight:
            await self.release(list(self.in_flight))

    async def _writer(self) -> None:
        """Sends queued frames back to back: everything queued is written before the writer waits again
        (in one socket write on the direct path)."""
        out = self._out
        raw = self._raw
        send = self.socket.send
        while True:
            if not out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            if raw is not None:
                batch: list[bytes] = []
                while out:
                    data = out.popleft()
                    if data is None:
                        break
                    batch.append(data)
                else:
                    data = b""
                if batch and not await raw.write_texts(batch):
                    self._closed = True
                    out.clear()
                    return
                if data is None:
                    return
                continue
            item = out.popleft()
            if item is None:
                return
            try:
                await send({"type": "websocket.send", "bytes": None, "text": item.decode()})
            except Exception:
                self._closed = True
                out.clear()
                return

    def send(self, frame: dict[str, Any]) -> None:
        if not self._closed:
            self._out.append(_encoder.encode(frame))
            self._out_ready.set()

    # ------------------------------------------------------------------ deliveries
    def delivered(self, queue: str, jobs: list[Job]) -> None:
        now = time.monotonic()
        default_ms = model_lock_default_ms()
        in_flight = self.in_flight
        frames: list[bytes] = []
        encode = _encoder.encode
        deliver_frame = model.deliver_frame
        for job in jobs:
            in_flight[job.id] = (queue, now + (job.lease_ms or default_ms) / 1000)
            frames.append(encode(deliver_frame(job)))
        if not self._closed:
            self._out.extend(frames)
            self._out_ready.set()

    def count_live(self, queue: str) -> int:
        """Unsettled deliveries of ``queue`` whose locks have not expired (expired ones were requeued)."""
        now = time.monotonic()
        expired = [i for i, (_, until) in self.in_flight.items() if until < now]
        for message_id in expired:
            del self.in_flight[message_id]
        return sum(1 for q, _ in self.in_flight.values() if q == queue)

    def _settle(self, ids: list[str]) -> None:
        by_queue: dict[str, int] = {}
        for message_id in ids:
            entry = self.in_flight.pop(message_id, None)
            if entry is not None:
                by_queue[entry[0]] = by_queue.get(entry[0], 0) + 1
        for queue, n in by_queue.items():
            sub = self.subscriptions.get(queue)
            if sub is not None:
                sub.settled(n)

    async def release(self, ids: list[str]) -> None:
        for message_id in ids:
            self.in_flight.pop(message_id, None)
        if not ids:
            return
        try:
            await self.service.engine.release(ids, consumer_id=self.consumer_id)
        except RustQueueError as exc:
            logger.info("releasing %d message(s) of a closed session failed: %s", len(ids), exc)

    def release_late_claim(self, claim: asyncio.Future[list[Job]]) -> None:
        if claim.cancelled() or claim.exception() is not None:
            return
        jobs = claim.result()
        if jobs:
            self._background(self.release([j.id for j in jobs]))

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ requests
    async def _handle(self, frame: dict[str, Any]) -> None:
        req_id = frame.get("req_id")
        try:
            kind = frame.get("type")
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None or not isinstance(kind, str):
                raise QrustyError(400, "UNKNOWN_TYPE", f"unknown frame type {kind!r}")
            if kind in _MUTATING and self.service.engine.state == "starting":
                raise QrustyError(503, "STARTING", "server is starting; retry shortly", retry_after_s=2)
            self._reply(kind, req_id, await handler(frame))
        except QrustyError as exc:
            self._error(req_id, exc)
        except RustQueueError as exc:
            self._error(req_id, model.from_engine_error(exc))
        except Exception as exc:
            logger.exception("websocket request failed")
            self._error(req_id, QrustyError(500, "INTERNAL", f"{type(exc).__name__}: {exc}"))

    def _reply(self, kind: str, req_id: Any, reply: dict[str, Any]) -> None:
        reply["type"] = "ok"
        reply["op"] = kind
        if req_id is not None:
            reply["req_id"] = req_id
        self.send(reply)

    def _error(self, req_id: Any, exc: QrustyError) -> None:
        frame: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
        if exc.retry_after_s is not None:
            frame["retry_after_secs"] = exc.retry_after_s
        if req_id is not None:
            frame["req_id"] = req_id
        self.send(frame)

    @staticmethod
    def _queue(frame: dict[str, Any]) -> str:
        queue = model.require_str(frame, "queue")
        assert queue is not None
        return queue

    @staticmethod
    def _id(frame: dict[str, Any]) -> str:
        message_id = model.require_str(frame, "id")
        assert message_id is not None
        return message_id

    async def _subscribe(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(frame)
        lock_ms = _lock_ms(frame)
        await self.service.queue_config(queue)
        credits = frame.get("credits")
        if credits is not None and (isinstance(credits, bool) or not isinstance(credits, int) or credits < 0):
            raise bad_request("credits must be a non-negative integer")
        sub = self.subscriptions.get(queue)
        if sub is None:
            sub = self.subscriptions[queue] = Subscription(self, queue, lock_ms)
            if credits is not None:
                sub.grant(credits)
            sub.start()  # its first claim waits SUBSCRIBE_GRACE_S, after this reply is queued
        else:
            sub.lock_ms = lock_ms
            if credits is not None:
                sub.grant(credits)
        return {"queue": queue, "lock_timeout_secs": lock_ms // 1000}

    async def _unsubscribe(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(frame)
        sub = self.subscriptions.pop(queue, None)
        if sub is not None:
            sub.stopped.set()
            self._background(sub.stop())
        return {"queue": queue}

    async def _ack(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue, message_id = self._queue(frame), self._id(frame)
        if not await self.service.ack(queue, message_id, self.consumer_id):
            raise model.not_found(f"message '{message_id}' is not locked by this session")
        self._settle([message_id])
        return {"queue": queue, "id": message_id, "acked": 1}

    async def _nack(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue, message_id = self._queue(frame), self._id(frame)
        outcome = await self.service.nack(queue, message_id, self.consumer_id)
        if outcome is None:
            raise model.not_found(f"message '{message_id}' is not locked by this session")
        self._settle([message_id])
        dropped = outcome["status"] == "dropped"
        return {"queue": queue, "id": message_id, "unlocked": int(not dropped), "dropped": int(dropped)}

    async def _batch_ack(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue, ids = self._queue(frame), check_ids(frame.get("ids"))
        result = await self.service.ack_batch(ids, self.consumer_id)
        self._settle(ids)
        return {"queue": queue, **result}

    async def _batch_nack(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue, ids = self._queue(frame), check_ids(frame.get("ids"))
        result = await self.service.nack_batch(ids, self.consumer_id)
        self._settle(ids)
        return {"queue": queue, **result}

    async def _credit(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(frame)
        credits = frame.get("credits")
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
            raise bad_request("credits must be a non-negative integer")
        sub = self.subscriptions.get(queue)
        if sub is None:
            raise QrustyError(400, "NOT_SUBSCRIBED", f"this session is not subscribed to '{queue}'")
        sub.grant(credits)
        return {"queue": queue, "credits": sub.credits}

    async def _renew(self, frame: dict[str, Any]) -> dict[str, Any]:
        queue, message_id = self._queue(frame), self._id(frame)
        lock_ms = _lock_ms(frame)
        if not await self.service.renew(message_id, self.consumer_id, lock_ms):
            raise model.not_found(f"message '{message_id}' is not locked by this session")
        if message_id in self.in_flight:
            self.in_flight[message_id] = (self.in_flight[message_id][0], time.monotonic() + lock_ms / 1000)
        return {"queue": queue, "id": message_id, "lock_timeout_secs": lock_ms // 1000}

    async def _subscribe_logs(self, frame: dict[str, Any]) -> dict[str, Any]:
        if self.logs is None:
            raise QrustyError(400, "UNAVAILABLE", "log streaming is not available on this server")
        if self._log_queue is None:
            self._log_queue = self.logs.subscribe()
            self._log_task = asyncio.create_task(self._forward_logs(self._log_queue), name="qrusty-ws-logs")
        return {}

    async def _unsubscribe_logs(self, frame: dict[str, Any]) -> dict[str, Any]:
        self._stop_logs()
        return {}

    def _stop_logs(self) -> None:
        if self._log_queue is not None and self.logs is not None:
            self.logs.unsubscribe(self._log_queue)
        self._log_queue = None
        if self._log_task is not None:
            self._log_task.cancel()
            self._log_task = None

    async def _forward_logs(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            self.send(await queue.get())
