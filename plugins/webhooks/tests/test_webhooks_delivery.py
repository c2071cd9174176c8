"""Delivery through a real HTTP receiver: body, headers, signature, retries, timeouts, filters."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from rustqueue_webhooks import verify_signature


async def test_delivery_body_headers_and_signature(service_factory: Any, receiver: Any, make_event: Any) -> None:
    service = await service_factory()
    hook = await service.create_webhook(receiver.url, ["job_completed"], [], "s3cret")
    service.on_events([make_event("job.completed", job_id="j-1", queue="emails")])
    (req,) = await receiver.wait_for(1)
    assert req.body == (
        b'{"event":"job.completed","webhook_id":"'
        + hook.id.encode()
        + b'","timestamp":"2026-01-02T03:04:05.678901Z","data":{"job_id":"j-1","queue":"emails"}}'
    )
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-rustqueue-event"] == "job.completed"
    assert req.headers["x-rustqueue-webhook-id"] == hook.id
    assert verify_signature("s3cret", req.body, req.headers["x-rustqueue-signature"])
    await asyncio.sleep(0.05)
    assert service.delivered_total == 1
    assert (await service.outbox_counts()) == {}


async def test_no_secret_means_no_signature_header(service_factory: Any, receiver: Any, make_event: Any) -> None:
    service = await service_factory()
    await service.create_webhook(receiver.url)
    service.on_events([make_event("job.pushed")])
    (req,) = await receiver.wait_for(1)
    assert "x-rustqueue-signature" not in req.headers
    assert req.json()["event"] == "job.pushed"


async def test_retries_after_500_then_succeeds_with_backoff(
    service_factory: Any, receiver: Any, make_event: Any, until: Any
) -> None:
    receiver.script = [500, 503, 200]
    service = await service_factory(retry_base_delay_ms=100)
    await service.create_webhook(receiver.url, secret="k")
    service.on_events([make_event("job.completed")])
    reqs = await receiver.wait_for(3)
    await until(lambda: service.delivered_total == 1)
    # Same bytes and signature on every attempt.
    assert reqs[0].body == reqs[1].body == reqs[2].body
    assert all(verify_signature("k", r.body, r.headers["x-rustqueue-signature"]) for r in reqs)
    # Exponential backoff: ~100 ms after the first failure, ~200 ms after the second.
    assert reqs[1].at - reqs[0].at >= 0.09
    assert reqs[2].at - reqs[1].at >= 0.19
    assert service.failed_total == 0
    await asyncio.sleep(0.1)
    assert len(receiver.requests) == 3


async def test_gives_up_after_max_retries_and_keeps_the_failure(
    service_factory: Any, receiver: Any, make_event: Any, until: Any
) -> None:
    receiver.default = 500
    service = await service_factory(max_retries=2, retry_base_delay_ms=10)
    hook = await service.create_webhook(receiver.url)
    service.on_events([make_event("job.completed")])
    await until(lambda: service.failed_total == 1)
    assert len(receiver.requests) == 3  # max_retries + 1 attempts
    await asyncio.sleep(0.1)
    assert len(receiver.requests) == 3
    (failed,) = await service.list_deliveries(hook.id, "failed")
    assert failed.attempts == 3
    assert failed.last_status == 500
    assert failed.last_error == "HTTP 500"
    assert failed.to_wire()["status"] == "failed"
    assert service.delivered_total == 0


async def test_hanging_receiver_hits_the_timeout_and_is_retried(
    service_factory: Any, receiver: Any, make_event: Any, until: Any
) -> None:
    receiver.script = ["hang"]
    service = await service_factory(delivery_timeout_ms=300, retry_base_delay_ms=10)
    hook = await service.create_webhook(receiver.url)
    service.on_events([make_event("job.completed")])
    await until(lambda: service.delivered_total == 1)
    # The hanging attempt was abandoned after the timeout, then retried (a loaded machine may need
    # more than one retry, so only the first gap is checked).
    assert len(receiver.requests) >= 2
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.29
    assert receiver.requests[1].body == receiver.requests[0].body
    assert service.failed_total == 0
    assert await service.list_deliveries(hook.id) == []


async def test_dead_receiver_counts_as_failure(service_factory: Any, receiver: Any, make_event: Any, until: Any):
    url = receiver.url
    receiver.close()  # nothing listens there any more
    service = await service_factory(max_retries=1, retry_base_delay_ms=10)
    hook = await service.create_webhook(url)
    service.on_events([make_event("job.completed")])
    await until(lambda: service.failed_total == 1)
    (failed,) = await service.list_deliveries(hook.id, "failed")
    assert failed.last_status is None
    assert failed.last_error


async def test_slow_receiver_does_not_hold_up_another(service_factory: Any, receivers: Any, make_event: Any) -> None:
    slow, fast = receivers(), receivers()
    slow.default = "hang"
    service = await service_factory(max_concurrency=4, delivery_timeout_ms=60_000)
    await service.create_webhook(slow.url, queues=["slow"])
    await service.create_webhook(fast.url, queues=["fast"])
    service.on_events([make_event("job.pushed", job_id=f"s{i}", queue="slow") for i in range(8)])
    await slow.wait_for(2)
    service.on_events([make_event("job.pushed", job_id="f1", queue="fast")])
    (req,) = await fast.wait_for(1, within=10.0)  # long before any slow attempt times out
    assert req.json()["data"] == {"job_id": "f1", "queue": "fast"}
    # The slow endpoint holds at most half of the slots.
    await asyncio.sleep(0.1)
    assert len(slow.requests) == 2


async def test_event_and_queue_filters(service_factory: Any, receivers: Any, make_event: Any) -> None:
    everything, completed_only, emails_only = receivers(), receivers(), receivers()
    service = await service_factory()
    await service.create_webhook(everything.url)
    await service.create_webhook(completed_only.url, events=["job.completed"])
    await service.create_webhook(emails_only.url, events=["job_pushed", "job_completed"], queues=["emails"])
    service.on_events(
        [
            make_event("job.pushed", job_id="a", queue="emails"),
            make_event("job.completed", job_id="a", queue="emails"),
            make_event("job.pushed", job_id="b", queue="reports"),
            make_event("job.completed", job_id="b", queue="reports"),
            make_event("job.cancelled", job_id="c", queue="emails"),
        ]
    )
    await service.flush()
    got_all = await everything.wait_for(5)
    got_completed = await completed_only.wait_for(2)
    got_emails = await emails_only.wait_for(2)
    await asyncio.sleep(0.1)

    def seen(reqs: list[Any]) -> set[tuple[str, str]]:
        return {(r.json()["event"], r.json()["data"]["job_id"]) for r in reqs}

    assert seen(got_all) == {
        ("job.pushed", "a"),
        ("job.completed", "a"),
        ("job.pushed", "b"),
        ("job.completed", "b"),
        ("job.cancelled", "c"),
    }
    assert seen(completed_only.requests) == {("job.completed", "a"), ("job.completed", "b")}
    assert seen(emails_only.requests) == {("job.pushed", "a"), ("job.completed", "a")}
    assert len(everything.requests) == 5 and len(got_completed) == 2 and len(got_emails) == 2


async def test_engine_kinds_map_to_webhook_events(service_factory: Any, receivers: Any, make_event: Any) -> None:
    failed_sub, dlq_sub, progress_sub = receivers(), receivers(), receivers()
    service = await service_factory()
    await service.create_webhook(failed_sub.url, events=["job_failed"])
    await service.create_webhook(dlq_sub.url, events=["job.dlq", "job_pushed"])
    await service.create_webhook(progress_sub.url, events=["job_progress"])
    service.on_events(
        [
            make_event("job.retrying", job_id="r"),  # a retry emits nothing
            make_event("job.claimed", job_id="r"),
            make_event("job.dlq", job_id="d"),
            make_event("job.unblocked", job_id="u"),  # reported as pushed, as the original did
            make_event("job.progress", job_id="p"),
        ]
    )
    (f,) = await failed_sub.wait_for(1)
    assert (f.json()["event"], f.headers["x-rustqueue-event"]) == ("job.failed", "job.failed")
    reqs = await dlq_sub.wait_for(2)
    assert {(r.json()["event"], r.json()["data"]["job_id"]) for r in reqs} == {
        ("job.dlq", "d"),
        ("job.pushed", "u"),
    }
    (p,) = await progress_sub.wait_for(1)
    assert p.json()["event"] == "job.progress"
    await asyncio.sleep(0.1)
    assert len(failed_sub.requests) == 1 and len(dlq_sub.requests) == 2 and len(progress_sub.requests) == 1


async def test_deleting_a_webhook_stops_its_deliveries(
    service_factory: Any, receiver: Any, make_event: Any, until: Any
) -> None:
    receiver.default = 500
    service = await service_factory(retry_base_delay_ms=60_000)
    hook = await service.create_webhook(receiver.url)
    service.on_events([make_event("job.completed")])
    await receiver.wait_for(1)
    await until(lambda: not service._inflight)
    assert len(await service.list_deliveries(hook.id, "pending")) == 1
    assert await service.delete_webhook(hook.id)
    assert not await service.delete_webhook(hook.id)
    assert await service.list_deliveries(hook.id) == []
    service.on_events([make_event("job.completed")])
    await service.flush()
    assert await service.outbox_counts() == {}


async def test_full_buffer_drops_and_counts_without_blocking(service_factory: Any, receiver: Any, make_event: Any):
    service = await service_factory(queue_size=1)
    await service.create_webhook(receiver.url)
    # Three batches in one loop turn: the writer has not run, so the buffer of one fills up.
    service.on_events([make_event("job.pushed", job_id="1")])
    service.on_events([make_event("job.pushed", job_id="2"), make_event("job.pushed", job_id="3")])
    service.on_events([make_event("job.pushed", job_id="4")])
    assert service.dropped_events_total == 3
    (req,) = await receiver.wait_for(1)
    assert req.json()["data"]["job_id"] == "1"


async def test_events_before_any_webhook_are_ignored(service_factory: Any, make_event: Any) -> None:
    service = await service_factory()
    service.on_events([make_event("job.completed")])
    await service.flush()
    assert await service.outbox_counts() == {}
    assert service.dropped_events_total == 0


async def test_one_batch_is_one_outbox_transaction(service_factory: Any, receiver: Any, make_event: Any):
    receiver.default = "hang"
    service = await service_factory(max_concurrency=2)
    await service.create_webhook(receiver.url)
    store = service._store
    calls: list[int] = []
    original = store.enqueue

    def counting(rows: Any, now: float) -> int:
        n = original(rows, now)
        calls.append(n)
        return n

    store.enqueue = counting
    service.on_events([make_event("job.pushed", job_id=str(i)) for i in range(500)])
    await service.flush()
    assert calls == [500]
    body = msgspec.json.decode((await service.list_deliveries(limit=1))[0].body)
    assert body["event"] == "job.pushed"


async def test_many_events_are_each_delivered_once(service_factory: Any, receivers: Any, make_event: Any) -> None:
    first, second = receivers(), receivers()
    service = await service_factory(max_concurrency=8)
    await service.create_webhook(first.url)
    await service.create_webhook(second.url, events=["job_completed"])
    for start in range(0, 200, 50):  # four committed batches
        service.on_events(
            [make_event("job.pushed", job_id=f"p{i}") for i in range(start, start + 50)]
            + [make_event("job.completed", job_id=f"c{i}") for i in range(start, start + 50)]
        )
    got_first = await first.wait_for(400, within=60)
    got_second = await second.wait_for(200, within=60)
    await asyncio.sleep(0.1)
    ids_first = [r.json()["data"]["job_id"] for r in got_first]
    ids_second = [r.json()["data"]["job_id"] for r in got_second]
    assert len(first.requests) == 400 and len(set(ids_first)) == 400
    assert len(second.requests) == 200 and set(ids_second) == {f"c{i}" for i in range(200)}
    assert service.delivered_total == 600
    assert await service.outbox_counts() == {}
