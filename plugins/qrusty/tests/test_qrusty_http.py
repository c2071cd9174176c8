"""qrusty's HTTP routes against a real engine (memory storage) served on a free port."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from rustqueue_core.engine import RustQueue


async def create(http: httpx.AsyncClient, name: str, **config: Any) -> None:
    response = await http.post("/create-queue", json={"name": name, "config": config})
    assert response.status_code == 200, response.text


async def publish(http: httpx.AsyncClient, queue: str, priority: Any, payload: str = "p", **extra: Any) -> str:
    response = await http.post("/publish", json={"queue": queue, "priority": priority, "payload": payload, **extra})
    assert response.status_code == 200, response.text
    message_id: str = response.json()["id"]
    return message_id


async def consume(http: httpx.AsyncClient, queue: str, consumer: str = "c", lock_s: int = 30) -> Any:
    response = await http.post(f"/consume/{queue}", json={"consumer_id": consumer, "timeout_seconds": lock_s})
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["message"]
    if code is not None:
        assert body["code"] == code


@pytest.mark.parametrize(
    ("ordering", "priorities", "expected"),
    [
        ("MaxFirst", [5, 1, 9, 5], [9, 5, 5, 1]),
        ("MinFirst", [5, 1, 9, 5], [1, 5, 5, 9]),
        ("MaxFirst", [0, 2**64 - 1, 2**63], [2**64 - 1, 2**63, 0]),
    ],
)
async def test_numeric_ordering_fifo_within_priority(
    http: httpx.AsyncClient, ordering: str, priorities: list[int], expected: list[int]
) -> None:
    await create(http, "q", ordering=ordering)
    ids = [await publish(http, "q", p, payload=f"m{i}") for i, p in enumerate(priorities)]
    got = [await consume(http, "q") for _ in priorities]
    assert [m["priority"] for m in got] == expected
    equal = [m["id"] for m in got if m["priority"] == 5]
    assert equal == [i for i, p in zip(ids, priorities, strict=True) if p == 5]  # FIFO within a level
    assert await consume(http, "q") is None


async def test_text_priorities_compare_lexicographically(http: httpx.AsyncClient) -> None:
    await create(http, "t", ordering="MaxFirst", priority_kind="Text")
    for priority in ("alpha", "beta", "2024-05-01", "Zulu"):
        await publish(http, "t", priority)
    got = [(await consume(http, "t"))["priority"] for _ in range(4)]
    assert got == ["beta", "alpha", "Zulu", "2024-05-01"]


@pytest.mark.parametrize(
    ("kind", "priority"),
    [("Numeric", -1), ("Numeric", 2**64), ("Numeric", "5"), ("Numeric", 1.5), ("Numeric", True), ("Text", 3)],
)
async def test_bad_priorities_are_400(http: httpx.AsyncClient, kind: str, priority: Any) -> None:
    await create(http, "bad", priority_kind=kind)
    response = await http.post("/publish", json={"queue": "bad", "priority": priority, "payload": "x"})
    assert_error(response, 400, "BAD_REQUEST")
    assert (await http.get("/queue-stats/bad")).json()["pending"] == 0


async def test_request_errors_are_4xx_never_5xx(http: httpx.AsyncClient) -> None:
    await create(http, "q")
    assert_error(await http.post("/publish", json={"queue": "nope", "priority": 1, "payload": "x"}), 404)
    assert_error(await http.post("/publish", content=b"{not json"), 400)
    assert_error(await http.post("/publish", json=[1, 2]), 400)
    assert_error(await http.post("/publish", json={"queue": "q", "priority": 1, "payload": {"a": 1}}), 400)
    assert_error(
        await http.post("/publish", json={"queue": "q", "priority": 1, "payload": "x", "max_retries": -1}),
        400,
    )
    assert_error(await http.post("/consume/nope", json={"consumer_id": "c"}), 404)
    assert_error(await http.post("/consume/q", json={"timeout_seconds": 5}), 400)
    assert_error(await http.post("/consume/q", json={"consumer_id": "c", "timeout_seconds": 0}), 400)
    assert_error(await http.post("/create-queue", json={"name": "q"}), 409)
    assert_error(await http.post("/create-queue", json={"name": "x", "config": {"ordering": "Fair"}}), 400)
    assert_error(await http.post("/create-queue", json={"name": "bad name!"}), 400)
    assert_error(await http.post("/update-queue", json={"name": "q", "config": {}}), 400)
    assert_error(await http.post("/update-queue", json={"name": "q", "config": {"ordering": "MinFirst"}}), 400)
    assert_error(await http.post("/update-queue", json={"name": "nope", "config": {"name": "n2"}}), 404)
    assert_error(await http.delete("/delete-queue/nope"), 404)
    assert_error(await http.post("/purge-queue/nope"), 404)
    assert_error(await http.get("/queue-stats/nope"), 404)
    assert_error(await http.get("/queues/nope/metrics"), 404)
    assert_error(await http.post("/ack/q/no-such-id", json={"consumer_id": "c"}), 404)
    assert_error(await http.post("/ack/q/no-such-id", json={}), 400)
    assert_error(await http.post("/ack-batch/q", json={"consumer_id": "c", "message_ids": "x"}), 400)
    assert_error(await http.get("/no-such-route"), 404)
    assert_error(await http.get("/publish"), 405)


async def test_ack_and_nack_only_by_the_locking_consumer(http: httpx.AsyncClient) -> None:
    await create(http, "q")
    message_id = await publish(http, "q", 1)
    assert (await consume(http, "q", "owner"))["id"] == message_id
    for path in (f"/ack/q/{message_id}", f"/nack/q/{message_id}"):
        assert_error(await http.post(path, json={"consumer_id": "intruder"}), 404)
    batch = await http.post("/ack-batch/q", json={"consumer_id": "intruder", "message_ids": [message_id]})
    assert batch.status_code == 200 and batch.json() == {"acked": 0, "failed": 1}
    response = await http.post(f"/ack/q/{message_id}", json={"consumer_id": "owner"})
    assert response.status_code == 200


async def test_nack_requeues_until_max_retries_then_dead_letters(http: httpx.AsyncClient, engine: RustQueue) -> None:
    await create(http, "r")
    message_id = await publish(http, "r", 1, max_retries=2)
    outcomes = []
    for attempt in range(3):
        message = await consume(http, "r", f"c{attempt}")
        assert message["id"] == message_id and message["retry_count"] == attempt
        response = await http.post(f"/nack/r/{message_id}", json={"consumer_id": f"c{attempt}"})
        assert response.status_code == 200
        outcomes.append(response.json()["status"])
    assert outcomes == ["requeued", "requeued", "dropped"]
    assert await consume(http, "r") is None
    dead = await engine.dlq("r")
    assert [j.id for j in dead] == [message_id]  # kept, visible and retryable through the DLQ
    assert (await http.get("/queue-stats/r")).json()["dead_letter"] == 1
    await engine.retry([message_id])
    assert (await consume(http, "r"))["id"] == message_id


async def test_lock_expiry_requeues_in_place(http: httpx.AsyncClient) -> None:
    await create(http, "e")
    first = await publish(http, "e", 5)
    second = await publish(http, "e", 5)
    assert (await consume(http, "e", "slow", lock_s=1))["id"] == first
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    again = None
    while loop.time() < deadline:
        again = await consume(http, "e", "next")
        if again is not None and again["id"] == first:
            break
        if again is not None:  # the second message came first: give it back and wait for the expiry
            assert again["id"] == second
            await http.post(f"/nack/e/{second}", json={"consumer_id": "next"})
        await asyncio.sleep(0.1)
    assert again is not None and again["id"] == first  # back ahead of the later message of its level
    assert_error(await http.post(f"/ack/e/{first}", json={"consumer_id": "slow"}), 404)


async def test_duplicates_suppressed_when_disallowed(http: httpx.AsyncClient) -> None:
    await create(http, "d", allow_duplicates=False)
    first = await http.post("/publish", json={"queue": "d", "priority": 1, "payload": "same"})
    again = await http.post("/publish", json={"queue": "d", "priority": 7, "payload": "same"})
    assert again.status_code == 200 and again.json() == {"id": first.json()["id"], "duplicate": True}
    await publish(http, "d", 1, payload="other")
    assert (await http.get("/queue-stats/d")).json()["pending"] == 2
    update = await http.post("/update-queue", json={"name": "d", "config": {"allow_duplicates": True}})
    assert update.status_code == 200
    await publish(http, "d", 1, payload="same")
    assert (await http.get("/queue-stats/d")).json()["pending"] == 3


async def test_bodyless_routes_and_json_answers(http: httpx.AsyncClient) -> None:
    await create(http, "a")
    await publish(http, "a", 1)
    # qrusty's client sends these without a body or Content-Type.
    purge = await http.post("/purge-queue/a")
    assert purge.status_code == 200 and purge.json()["purged"] == 1
    assert (await http.post("/purge-all")).json()["purged"] == 0
    assert (await http.get("/queues")).json() == ["a"]
    deleted = await http.delete("/delete-queue/a")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 0
    assert (await http.post("/delete-all")).json() == {"status": "deleted", "queues": 0, "deleted": 0}
    assert (await consume_raw(http, "missing")).status_code == 404


async def consume_raw(http: httpx.AsyncClient, queue: str) -> httpx.Response:
    return await http.post(f"/consume/{queue}", json={"consumer_id": "c"})


async def test_empty_consume_is_null_at_once(http: httpx.AsyncClient) -> None:
    await create(http, "empty")
    started = asyncio.get_running_loop().time()
    response = await http.post("/consume/empty", json={"consumer_id": "c", "timeout_seconds": 30})
    assert response.status_code == 200 and response.content == b"null"
    assert asyncio.get_running_loop().time() - started < 5
