"""The broker alone: mapping of engine kinds, bounded queues that drop for slow subscribers, filters."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from rustqueue_websocket.broker import COMPAT_EVENT_NAMES, EventBroker, parse_filter

from rustqueue_core.models import JobEvent

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def event(kind: str, job_id: str = "j1", queue: str = "q", **extra: object) -> JobEvent:
    return JobEvent(kind=kind, job_id=job_id, queue=queue, timestamp=NOW, **extra)  # type: ignore[arg-type]


def drain(subscriber) -> list[dict]:
    frames = []
    while not subscriber.frames.empty():
        frame = subscriber.frames.get_nowait()
        if frame is not None:
            frames.append(msgspec.json.decode(frame))
    return frames


async def test_compatible_frames_use_the_original_names_and_shape():
    broker = EventBroker()
    subscriber = broker.subscribe()
    broker.publish(
        [
            event(kind)
            for kind in (
                "job.pushed",
                "job.unblocked",
                "job.claimed",
                "job.completed",
                "job.retrying",
                "job.dlq",
                "job.cancelled",
                "job.progress",
            )
        ]
    )
    frames = drain(subscriber)
    assert [f["event"] for f in frames] == [
        "job.pushed",
        "job.pushed",
        "job.completed",
        "job.failed",
        "job.cancelled",
    ]
    assert frames[0] == {
        "event": "job.pushed",
        "job_id": "j1",
        "queue": "q",
        "timestamp": "2026-01-02T03:04:05.678000Z",
    }
    assert set(COMPAT_EVENT_NAMES.values()) == {"job.pushed", "job.completed", "job.failed", "job.cancelled"}


async def test_slow_subscriber_drops_and_counts_without_blocking_others():
    broker = EventBroker(queue_size=3)
    slow = broker.subscribe()
    fast = broker.subscribe()
    broker.publish([event("job.pushed", job_id=f"j{i}") for i in range(3)])
    drain(fast)
    broker.publish([event("job.pushed", job_id=f"k{i}") for i in range(3)])
    assert slow.dropped == 3 and fast.dropped == 0
    assert broker.dropped_total == 3
    assert [f["job_id"] for f in drain(slow)] == ["j0", "j1", "j2"]
    assert [f["job_id"] for f in drain(fast)] == ["k0", "k1", "k2"]


async def test_close_wakes_a_full_subscriber_with_the_end_marker():
    broker = EventBroker(queue_size=1)
    subscriber = broker.subscribe()
    broker.publish([event("job.pushed")])
    broker.unsubscribe(subscriber)
    assert broker.client_count == 0
    assert subscriber.frames.get_nowait() is None


async def test_extended_frames_carry_details_and_kind_filters():
    broker = EventBroker()
    everything = broker.subscribe(extended=True)
    only_dlq = broker.subscribe(extended=True, kinds={"job.dlq"})
    broker.publish([event("job.retrying", attempt=1, state="delayed", reason="boom"), event("job.dlq")])
    frames = drain(everything)
    assert frames[0] == {
        "event": "job.retrying",
        "job_id": "j1",
        "queue": "q",
        "timestamp": "2026-01-02T03:04:05.678000Z",
        "state": "delayed",
        "attempt": 1,
        "reason": "boom",
    }
    assert [f["event"] for f in drain(only_dlq)] == ["job.dlq"]


async def test_publish_without_subscribers_is_a_no_op():
    broker = EventBroker()
    broker.publish([event("job.pushed")])
    assert broker.published_total == 0


def test_parse_filter():
    assert parse_filter(None, None) == (False, None, None)
    assert parse_filter("all", "a, b") == (True, None, frozenset({"a", "b"}))
    assert parse_filter("job.failed,job.completed", None) == (
        True,
        frozenset({"job.dlq", "job.completed"}),
        None,
    )
    with pytest.raises(ValueError, match="unknown event kind"):
        parse_filter("job.nope", None)
