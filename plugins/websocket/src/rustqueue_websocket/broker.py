"""Fan-out of committed job events to WebSocket subscribers.

``publish`` runs inside ``rustqueue_jobs_changed`` on the engine's loop, so it never blocks or awaits:
each event is encoded once per frame style and offered to every subscriber's bounded queue; a full
queue drops the frame and counts it (a slow client skips what it missed, as in the original).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec

from rustqueue_core.models import JobEvent

DEFAULT_QUEUE_SIZE = 1024

#: Engine event kind → the original's event name. Kinds missing here are not sent in compatible mode.
COMPAT_EVENT_NAMES = {
    "job.pushed": "job.pushed",
    "job.unblocked": "job.pushed",
    "job.completed": "job.completed",
    "job.dlq": "job.failed",
    "job.cancelled": "job.cancelled",
}
#: Every kind the engine emits; ``?events=all`` streams them under these names.
ENGINE_EVENT_KINDS = (
    "job.pushed",
    "job.unblocked",
    "job.promoted",
    "job.claimed",
    "job.progress",
    "job.retrying",
    "job.released",
    "job.completed",
    "job.dlq",
    "job.cancelled",
    "job.deleted",
)


class CompatFrame(msgspec.Struct):
    """The original's JobEvent frame, keys in its order."""

    event: str
    job_id: str
    queue: str
    timestamp: datetime


class ExtendedFrame(msgspec.Struct, omit_defaults=True):
    """The engine's event under its own kind, with state, attempt and reason when known."""

    event: str
    job_id: str
    queue: str
    timestamp: datetime
    state: str | None = None
    attempt: int | None = None
    reason: str | None = None


_encode = msgspec.json.encode


class Subscriber:
    """One connected client: its filter, its bounded queue of encoded text frames and its drop count."""

    def __init__(
        self,
        *,
        extended: bool = False,
        kinds: frozenset[str] | None = None,
        queues: frozenset[str] | None = None,
        maxsize: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.extended = extended
        self.kinds = kinds
        self.queues = queues
        self.frames: asyncio.Queue[str | None] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self.closed = False

    def offer(self, frame: str) -> bool:
        try:
            self.frames.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def close(self) -> None:
        """Wake the sender with the end marker, making room for it if the queue is full."""
        if self.closed:
            return
        self.closed = True
        if self.frames.full():
            try:
                self.frames.get_nowait()
            except asyncio.QueueEmpty:
                pass
        self.frames.put_nowait(None)


class EventBroker:
    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        #: Frames dropped because a subscriber's queue was full, over all subscribers so far.
        self.dropped_total = 0
        self.published_total = 0

    @property
    def client_count(self) -> int:
        return len(self._subscribers)

    def subscribe(
        self,
        *,
        extended: bool = False,
        kinds: Iterable[str] | None = None,
        queues: Iterable[str] | None = None,
    ) -> Subscriber:
        subscriber = Subscriber(
            extended=extended,
            kinds=frozenset(kinds) if kinds is not None else None,
            queues=frozenset(queues) if queues is not None else None,
            maxsize=self.queue_size,
        )
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        subscriber.close()

    def close_all(self) -> None:
        for subscriber in list(self._subscribers):
            self.unsubscribe(subscriber)

    def publish(self, events: Sequence[JobEvent]) -> None:
        if not self._subscribers:
            return
        subscribers = tuple(self._subscribers)
        for event in events:
            compat_frame: str | None = None
            extended_frame: str | None = None
            compat_name = COMPAT_EVENT_NAMES.get(event.kind)
            for subscriber in subscribers:
                if subscriber.queues is not None and event.queue not in subscriber.queues:
                    continue
                if subscriber.extended:
                    if subscriber.kinds is not None and event.kind not in subscriber.kinds:
                        continue
                    if extended_frame is None:
                        extended_frame = _encode(
                            ExtendedFrame(
                                event.kind,
                                event.job_id,
                                event.queue,
                                event.timestamp,
                                event.state,
                                event.attempt,
                                event.reason,
                            )
                        ).decode()
                    frame = extended_frame
                else:
                    if compat_name is None:
                        continue
                    if compat_frame is None:
                        compat_frame = _encode(
                            CompatFrame(compat_name, event.job_id, event.queue, event.timestamp)
                        ).decode()
                    frame = compat_frame
                if subscriber.offer(frame):
                    self.published_total += 1
                else:
                    self.dropped_total += 1


Filter = tuple[bool, frozenset[str] | None, frozenset[str] | None]


def parse_filter(events: str | None, queues: str | None) -> Filter:
    """Query parameters of a subscription: ``events`` is absent (the original's four events), ``all``,
    or a comma list of engine kinds (``job.failed`` is accepted for ``job.dlq``); ``queue`` a comma list."""
    queue_set = frozenset(q.strip() for q in queues.split(",") if q.strip()) if queues else None
    if not events:
        return False, None, queue_set
    if events.strip() == "all":
        return True, None, queue_set
    kinds: set[str] = set()
    for name in events.split(","):
        name = name.strip()
        if not name:
            continue
        if name == "job.failed":
            name = "job.dlq"
        if name not in ENGINE_EVENT_KINDS:
            raise ValueError(f"unknown event kind {name!r}; known: {', '.join(ENGINE_EVENT_KINDS)}")
        kinds.add(name)
    return True, frozenset(kinds), queue_set
