"""qrusty's own Python client (``qrusty-pyclient``), unchanged, against ``rustqueue serve`` in a
subprocess: every public method of ``QrustyClient`` and of ``WsSession``."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import requests
from qrusty_pyclient import DeliveredMessage, QrustyClient, WsSession

from .conftest import ServerProcess


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(server_process: ServerProcess) -> QrustyClient:
    return QrustyClient(server_process.base_url)


async def _next(iterator: Any) -> Any:
    return await asyncio.wait_for(iterator.__anext__(), 10.0)


def test_health_is_json_ok(client: QrustyClient) -> None:
    assert json.loads(client.health()) == {"status": "ok"}


def test_queue_lifecycle(client: QrustyClient) -> None:
    name = _name("life")
    client.create_queue(name, ordering="MinFirst", allow_duplicates=False, priority_kind="Numeric")
    with pytest.raises(requests.HTTPError) as exists:
        client.create_queue(name)
    assert exists.value.response is not None and exists.value.response.status_code == 409
    assert name in client.list_queues()
    stats = client.queue_stats(name)
    assert stats["config"] == {"ordering": "MinFirst", "priority_kind": "Numeric", "allow_duplicates": False}

    renamed = _name("renamed")
    client.update_queue(name, new_name=renamed)
    client.update_queue(renamed, allow_duplicates=True)
    queues = client.list_queues()
    assert renamed in queues and name not in queues
    assert client.queue_stats(renamed)["config"]["allow_duplicates"] is True
    with pytest.raises(ValueError):
        client.update_queue(renamed)

    client.publish(renamed, 1, {"n": 1})
    client.publish(renamed, 2, {"n": 2})
    assert client.purge(renamed)["purged"] == 2
    assert client.queue_stats(renamed)["pending"] == 0
    client.publish(renamed, 3, "x")
    assert client.delete_queue(renamed)["deleted"] == 1
    assert renamed not in client.list_queues()


def test_publish_consume_ack_nack(client: QrustyClient) -> None:
    queue = _name("work")
    client.create_queue(queue)
    low = client.publish(queue, 1, {"order": 1})["id"]
    high = client.publish(queue, 10**19, "urgent")["id"]  # beyond i64: qrusty's u64 range
    first = client.consume(queue, "worker-1", timeout_seconds=30)
    assert first is not None
    assert first["id"] == high and first["payload"] == "urgent" and first["priority"] == 10**19
    assert client.ack(queue, first["id"], "someone-else") is False
    assert client.ack(queue, first["id"], "worker-1") is True
    assert client.ack(queue, first["id"], "worker-1") is False

    second = client.consume(queue, "worker-2")
    assert second is not None and second["id"] == low and json.loads(second["payload"]) == {"order": 1}
    assert client.nack(queue, low, "worker-1") is False
    assert client.nack(queue, low, "worker-2") is True
    again = client.consume(queue, "worker-3")
    assert again is not None and again["id"] == low and again["retry_count"] == 1
    assert client.ack(queue, low, "worker-3") is True
    assert client.consume(queue, "worker-3") is None


def test_batches_stats_and_metrics(client: QrustyClient) -> None:
    queue = _name("batch")
    client.create_queue(queue, priority_kind="Text", ordering="MinFirst")
    ids = [client.publish(queue, f"2024-01-0{i}", {"i": i}, max_retries=0)["id"] for i in range(1, 7)]
    taken = [client.consume(queue, "c1") for _ in range(6)]
    assert [m["id"] for m in taken if m] == ids  # text priorities, lexicographic, MinFirst
    assert client.ack_batch(queue, "c1", [*ids[:3], "no-such-id"]) == {"acked": 3, "failed": 1}
    nacked = client.nack_batch(queue, "c1", ids[3:])
    assert nacked == {"unlocked": 0, "dropped": 3, "failed": 0}  # max_retries=0: straight to dead letters

    stats = client.stats()
    assert "queues" in stats and "summary" in stats
    mine = next(q for q in stats["queues"] if q["name"] == queue)
    assert mine["published"] == 6 and mine["acked"] == 3 and mine["dead_letter"] == 3
    assert stats["summary"]["publish_rate_per_sec"] > 0 and stats["summary"]["ack_rate_per_sec"] > 0
    metrics = client.queue_metrics(queue)
    assert sum(p["published"] for p in metrics["points"]) == 6
    assert sum(p["acked"] for p in metrics["points"]) == 3
    assert sum(p["dropped"] for p in metrics["points"]) == 3
    timings = requests.get(f"{client.base_url}/operation-timings", timeout=10).json()["operations"]
    assert timings["publish"]["count"] >= 6 and timings["ack_batch"]["count"] >= 1


def test_purge_all_and_delete_all(server_process: ServerProcess) -> None:
    client = QrustyClient(server_process.base_url)
    a, b = _name("pa"), _name("pb")
    client.create_queue(a)
    client.create_queue(b)
    client.publish(a, 1, "1")
    client.publish(b, 1, "2")
    assert client.purge_all()["purged"] >= 2
    assert client.queue_stats(a)["pending"] == 0 and a in client.list_queues()
    result = client.delete_all()
    assert result["queues"] >= 2
    assert client.list_queues() == []


async def test_ws_session_every_method(server_process: ServerProcess) -> None:
    http = QrustyClient(server_process.base_url)
    queue = _name("ws")
    await asyncio.to_thread(http.create_queue, queue)
    async with WsSession(server_process.ws_base) as session:
        logs = await session.subscribe_logs()
        ids = [await session.publish(queue, f"m{i}", priority=i) for i in range(5)]
        messages = await session.subscribe(queue)
        got: list[DeliveredMessage] = [await _next(messages) for _ in range(5)]
        assert [m.id for m in got] == ids[::-1]  # MaxFirst
        assert got[0].payload == "m4" and got[0].priority == 4 and got[0].created_at
        await session.renew(queue, got[0].id)
        await session.ack(queue, got[0].id)
        await session.nack(queue, got[1].id)  # back in line (retries left) and pushed again
        redelivered = await _next(messages)
        assert redelivered.id == got[1].id
        assert await session.batch_ack(queue, [redelivered.id, got[2].id]) == 2
        assert await session.batch_nack(queue, [got[3].id, got[4].id]) == (2, 0)
        again = {(await _next(messages)).id for _ in range(2)}
        assert again == {got[3].id, got[4].id}
        await session.grant_credits(queue, 10)
        assert await session.batch_ack(queue, sorted(again)) == 2
        await session.unsubscribe(queue)
        with pytest.raises(RuntimeError, match="NOT_FOUND"):
            await session.ack(queue, got[0].id)  # acked already
        marker = _name("logged")
        await asyncio.to_thread(http.create_queue, marker)  # the server logs the creation
        line = await _next(logs)
        while marker not in line["message"]:
            line = await _next(logs)
        assert line["level"] == "INFO" and line["timestamp"]
        await session.unsubscribe_logs()
    stats = await asyncio.to_thread(http.queue_stats, queue)
    assert stats["pending"] == 0 and stats["locked"] == 0 and stats["acked"] == 5


async def test_ws_messages_of_a_closed_session_go_back_at_once(server_process: ServerProcess) -> None:
    http = QrustyClient(server_process.base_url)
    queue = _name("close")
    await asyncio.to_thread(http.create_queue, queue)
    async with WsSession(server_process.ws_base) as session:
        message_id = await session.publish(queue, "held")
        messages = await session.subscribe(queue)
        assert (await _next(messages)).id == message_id
    deadline = asyncio.get_running_loop().time() + 5
    message = None
    while message is None and asyncio.get_running_loop().time() < deadline:
        message = await asyncio.to_thread(http.consume, queue, "after-close")
        if message is None:
            await asyncio.sleep(0.05)
    assert message is not None and message["id"] == message_id
    assert message["retry_count"] == 0  # a release, not a failure


def test_dashboard_json_on_the_http_port(server_process: ServerProcess, client: QrustyClient) -> None:
    queue = _name("dash")
    client.create_queue(queue)
    client.publish(queue, 1, "x")
    base = server_process.http_url
    stats = requests.get(f"{base}/api/v1/qrusty/stats", timeout=10).json()
    assert any(q["name"] == queue and q["pending"] == 1 for q in stats["queues"])
    metrics = requests.get(f"{base}/api/v1/qrusty/queues/{queue}/metrics", timeout=10).json()
    assert sum(p["published"] for p in metrics["points"]) == 1
    assert requests.get(f"{base}/api/v1/qrusty/queues/nope/metrics", timeout=10).status_code == 404
    timings = requests.get(f"{base}/api/v1/qrusty/operation-timings", timeout=10).json()
    assert timings["operations"]["publish"]["count"] >= 1
    logs = requests.get(f"{base}/api/v1/qrusty/logs", timeout=10).json()["lines"]
    assert any(queue in line["message"] for line in logs)
    info = requests.get(f"{base}/api/v1/qrusty/info", timeout=10).json()
    assert info["port"] == server_process.port
    # the same queue is an ordinary rustqueue queue on the rustqueue API
    listed = requests.get(f"{base}/api/v1/queues", timeout=10).json()
    assert queue in str(listed)
