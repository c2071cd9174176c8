"""The event stream on the HTTP port: the original's four events, extended kinds, filters, fan-out."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import msgspec
import pytest
import rustqueue_websocket.plugin as websocket_plugin
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rustqueue_core.models import JobEvent

Z_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def recv(connection: Any, wait: float = 5.0) -> dict[str, Any]:
    frame = await asyncio.wait_for(connection.recv(), wait)
    assert isinstance(frame, str), "events are text frames"
    event: dict[str, Any] = msgspec.json.decode(frame)
    return event


async def silent(connection: Any, wait: float = 0.2) -> None:
    try:
        frame = await asyncio.wait_for(connection.recv(), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected event {frame!r}")


async def test_push_ack_dlq_and_cancel_events(ws_engine, http_base):
    async with connect(f"ws://{http_base}/api/v1/events") as ws:
        job_id = await ws_engine.push("emails", "send", {})
        event = await recv(ws)
        assert list(event) == ["event", "job_id", "queue", "timestamp"]
        assert (event["event"], event["job_id"], event["queue"]) == ("job.pushed", job_id, "emails")
        assert Z_TIMESTAMP.match(event["timestamp"])

        await ws_engine.claim("emails")
        await ws_engine.ack(job_id, {"done": True})
        assert (await recv(ws))["event"] == "job.completed"

        fragile = await ws_engine.push("tasks", "fragile", {}, max_attempts=1)
        assert (await recv(ws))["job_id"] == fragile
        await ws_engine.claim("tasks")
        await ws_engine.fail(fragile, "fatal")
        event = await recv(ws)
        assert (event["event"], event["job_id"], event["queue"]) == ("job.failed", fragile, "tasks")

        doomed = await ws_engine.push("tasks", "task", {})
        await recv(ws)
        await ws_engine.cancel(doomed)
        event = await recv(ws)
        assert (event["event"], event["job_id"]) == ("job.cancelled", doomed)


async def test_retry_emits_nothing_in_compatible_mode(ws_engine, http_base):
    async with connect(f"ws://{http_base}/api/v1/events") as ws:
        job_id = await ws_engine.push("tasks", "retryable", {})
        await recv(ws)
        await ws_engine.claim("tasks")
        result = await ws_engine.fail(job_id, "transient")
        assert result.will_retry
        await silent(ws)


async def test_batch_push_emits_one_frame_per_job(ws_engine, http_base):
    async with connect(f"ws://{http_base}/api/v1/events") as ws:
        ids = await ws_engine.push_batch("bulk", [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        received = [(await recv(ws))["job_id"] for _ in ids]
        assert received == ids


async def test_extended_mode_streams_engine_kinds_with_details(ws_engine, http_base):
    async with connect(f"ws://{http_base}/api/v1/events?events=all") as ws:
        job_id = await ws_engine.push("tasks", "task", {})
        assert (await recv(ws))["event"] == "job.pushed"
        await ws_engine.claim("tasks")
        claimed = await recv(ws)
        assert claimed["event"] == "job.claimed"
        await ws_engine.fail(job_id, "transient")
        retrying = await recv(ws)
        assert retrying["event"] == "job.retrying" and retrying["job_id"] == job_id
        assert retrying.get("attempt") == 1


async def test_kind_and_queue_filters(ws_engine, http_base):
    url = f"ws://{http_base}/api/v1/events?events=job.completed,job.failed&queue=keep"
    async with connect(url) as ws:
        skipped = await ws_engine.push("other", "t", {})
        kept = await ws_engine.push("keep", "t", {})
        await ws_engine.claim("other")
        await ws_engine.claim("keep")
        await ws_engine.ack(skipped)
        await ws_engine.ack(kept)
        event = await recv(ws)
        assert (event["event"], event["job_id"]) == ("job.completed", kept)
        await silent(ws)


async def test_unknown_event_kind_is_rejected_at_handshake(http_base):
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"ws://{http_base}/api/v1/events?events=job.bogus"):
            pass
    assert caught.value.response.status_code == 400


async def test_many_subscribers_each_get_every_event(ws_engine, http_base):
    async with (
        connect(f"ws://{http_base}/api/v1/events") as first,
        connect(f"ws://{http_base}/api/v1/events") as second,
    ):
        job_id = await ws_engine.push("tasks", "task", {})
        assert (await recv(first))["job_id"] == job_id
        assert (await recv(second))["job_id"] == job_id


async def test_closed_client_is_unsubscribed(ws_engine, http_base):
    plugin = websocket_plugin.find_plugin(ws_engine.host)
    assert plugin is not None
    async with connect(f"ws://{http_base}/api/v1/events") as ws:
        await ws_engine.push("tasks", "task", {})
        await recv(ws)
        assert plugin.broker.client_count == 1
    for _ in range(100):
        if plugin.broker.client_count == 0:
            break
        await asyncio.sleep(0.02)
    assert plugin.broker.client_count == 0


async def test_plain_get_answers_426_json(http_base):
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{http_base}/api/v1/events")
    assert response.status_code == 426
    assert response.json()["error"]["code"] == "UPGRADE_REQUIRED"


def test_job_event_model_has_the_fields_frames_use():
    assert {"kind", "job_id", "queue", "timestamp"} <= set(JobEvent.__struct_fields__)
