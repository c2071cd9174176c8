"""The hot HTTP routes served from the protocol (``fasthttp``): requests of one loop tick are served
together, yet every answer is the one a lone request gets; HTTP framing (pipelining, ``Connection:
close``, chunked bodies) is kept. And the WebSocket direct path keeps every frame, in order, under
read-ahead limits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from rustqueue_qrusty import ws as ws_module
from rustqueue_qrusty.fasthttp import FastHttpProtocol, match
from rustqueue_qrusty.server import QrustyServer
from websockets.asyncio.client import connect

from rustqueue_core.engine import RustQueue


def test_only_exact_hot_routes_match() -> None:
    assert match("POST", "/publish") == (1, "", "")
    assert match("POST", "/consume/q") == (2, "q", "")
    assert match("POST", "/ack/q/m-1") == (3, "q", "m-1")
    for method, path in (
        ("GET", "/publish"),
        ("POST", "/publish/"),
        ("POST", "/consume/"),
        ("POST", "/consume/q/"),
        ("POST", "/ack/q"),
        ("POST", "/ack/q/"),
        ("POST", "/ack/q/m/x"),
        ("POST", "/nack/q/m"),
    ):
        assert match(method, path) is None, path


async def test_server_uses_the_fast_protocol(qserver: QrustyServer) -> None:
    assert qserver.fast is not None
    protocol = qserver._server.config.http_protocol_class  # type: ignore[union-attr]
    assert issubclass(protocol, FastHttpProtocol)


async def _clients(port: int, n: int) -> list[httpx.AsyncClient]:
    return [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) for _ in range(n)]


async def test_concurrent_publishes_each_get_their_own_outcome(qserver: QrustyServer, engine: RustQueue) -> None:
    await engine.create_queue("q")
    await engine.create_queue("dedup", allow_duplicates=False)
    clients = await _clients(qserver.port, 12)
    bodies: list[Any] = [{"queue": "q", "payload": f"m{i}", "priority": 5} for i in range(6)]
    bodies += [
        {"queue": "q", "payload": "bad", "priority": -1},
        {"queue": "missing", "payload": "x"},
        {"queue": "dedup", "payload": "same"},
        {"queue": "dedup", "payload": "same"},
        {"queue": "q", "payload": 7},
        ["not", "an", "object"],
    ]
    try:
        answers = await asyncio.gather(*(c.post("/publish", json=b) for c, b in zip(clients, bodies, strict=True)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    statuses = [a.status_code for a in answers]
    assert statuses[:6] == [200] * 6
    assert statuses[6:8] == [400, 404]
    assert statuses[10:] == [400, 400]
    assert answers[7].json()["status"] == "error"
    first, second = answers[8].json(), answers[9].json()
    assert {first.get("duplicate"), second.get("duplicate")} == {None, True}
    assert first["id"] == second["id"]
    ids = {a.json()["id"] for a in answers[:6]}
    assert len(ids) == 6
    claimed = await engine.claim("q", 10, consumer_id="c")
    assert {job.id for job in claimed} == ids


async def test_concurrent_acks_check_each_lock_owner(qserver: QrustyServer, engine: RustQueue) -> None:
    await engine.create_queue("q")
    for i in range(8):
        await engine.push("q", "qrusty.message", f"m{i}")
    mine = [job.id for job in await engine.claim("q", 6, consumer_id="a")]
    theirs = [job.id for job in await engine.claim("q", 2, consumer_id="b")]
    requests = [(i, "a") for i in mine[:4]]  # acked by their owner
    requests += [(theirs[0], "a"), (theirs[1], "b")]  # someone else's lock / the owner's
    requests += [("no-such-message", "a"), (mine[4], "a"), (mine[4], "a")]  # unknown; the same id twice
    requests += [(mine[5], "b")]
    clients = await _clients(qserver.port, len(requests))
    try:
        answers = await asyncio.gather(
            *(c.post(f"/ack/q/{i}", json={"consumer_id": who}) for c, (i, who) in zip(clients, requests, strict=True))
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    statuses = [a.status_code for a in answers]
    assert statuses[:4] == [200] * 4
    assert statuses[4:7] == [404, 200, 404]
    assert sorted(statuses[7:9]) == [200, 404]  # the first ack wins, the second finds it acked
    assert statuses[9] == 404
    assert answers[0].json() == {"status": "acked", "id": mine[0]}
    assert answers[4].json()["code"] == "NOT_FOUND"
    assert (await engine.get_job(mine[5])).state == "active"  # type: ignore[union-attr]
    assert (await engine.get_job(theirs[0])).state == "active"  # type: ignore[union-attr]


async def test_consume_answers(http: httpx.AsyncClient, engine: RustQueue) -> None:
    await engine.create_queue("q")
    empty = await http.post("/consume/q", json={"consumer_id": "c"})
    assert empty.status_code == 200 and empty.content == b"null"
    assert empty.headers["content-type"] == "application/json"
    assert (await http.post("/consume/nope", json={"consumer_id": "c"})).status_code == 404
    assert (await http.post("/consume/q", content=b"")).status_code == 400
    bad = await http.post("/consume/q", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["message"] == "request body is not valid JSON"
    assert (await http.post("/consume/q", json={"consumer_id": "c", "timeout_seconds": 0})).status_code == 400
    published = (await http.post("/publish", json={"queue": "q", "payload": "hi"})).json()
    message = (await http.post("/consume/q", json={"consumer_id": "c", "timeout_seconds": 5})).json()
    assert message["id"] == published["id"] and message["payload"] == "hi" and message["locked_by"] == "c"
    job = await engine.get_job(message["id"])
    assert job is not None and job.lease_expires_at is not None
    assert message["created_at"] == job.created_at.isoformat().replace("+00:00", "Z")
    assert message["lock_expires_at"] == job.lease_expires_at.isoformat().replace("+00:00", "Z")
    assert message["created_at"].endswith("Z")


async def _raw_exchange(port: int, data: bytes, answers: int) -> list[tuple[bytes, dict[str, str], bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        out: list[tuple[bytes, dict[str, str], bytes]] = []
        for _ in range(answers):
            status = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            out.append((status, headers, body))
        return out
    finally:
        writer.close()


def _request(path: str, body: Any, extra: str = "") -> bytes:
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
    return head.encode() + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload


async def test_pipelined_requests_are_answered_in_order(qserver: QrustyServer, engine: RustQueue) -> None:
    await engine.create_queue("q")
    data = (
        _request("/publish", {"queue": "q", "payload": "p1"})
        + _request("/consume/q", {"consumer_id": "c"})
        + b"GET /queues HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"POST /ack/q/m HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{nope"  # answered at once
        + _request("/publish", {"queue": "q", "payload": "p2"})
    )
    answers = await _raw_exchange(qserver.port, data, 5)
    assert [a[0].split()[1] for a in answers] == [b"200", b"200", b"200", b"400", b"200"]
    published = json.loads(answers[0][2])
    assert json.loads(answers[1][2])["id"] == published["id"]
    assert json.loads(answers[2][2]) == ["q"]
    assert json.loads(answers[3][2])["code"] == "BAD_REQUEST"
    assert "id" in json.loads(answers[4][2])


async def test_connection_close_is_honoured(qserver: QrustyServer, engine: RustQueue) -> None:
    await engine.create_queue("q")
    reader, writer = await asyncio.open_connection("127.0.0.1", qserver.port)
    try:
        writer.write(_request("/publish", {"queue": "q", "payload": "x"}, "Connection: close\r\n"))
        raw = await asyncio.wait_for(reader.read(), 5)  # the server closes after its answer
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
    assert "id" in json.loads(body)


async def test_chunked_bodies_take_the_application_path(qserver: QrustyServer, engine: RustQueue) -> None:
    await engine.create_queue("q")
    payload = json.dumps({"queue": "q", "payload": "chunked"}).encode()
    data = (
        b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(payload):x}\r\n".encode()
        + payload
        + b"\r\n0\r\n\r\n"
    )
    [(status, _, body)] = await _raw_exchange(qserver.port, data, 1)
    assert status.split()[1] == b"200"
    job = await engine.get_job(json.loads(body)["id"])
    assert job is not None and job.data == "chunked"


async def test_fast_routes_answer_503_while_starting(qserver: QrustyServer, engine: RustQueue) -> None:
    engine.state = "starting"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{qserver.port}", timeout=10) as http:
            for path in ("/publish", "/consume/q", "/ack/q/m"):
                answer = await http.post(path, content=b"{nope")
                assert answer.status_code == 503, path
                assert answer.headers["retry-after"] == "2"
                assert answer.json()["status"] == "starting"
    finally:
        engine.state = "ready"


@pytest.mark.parametrize("limit", [1, 8])
async def test_ws_direct_path_keeps_every_frame_under_read_ahead_limits(
    ws_url: str, engine: RustQueue, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(ws_module, "MAX_INBOUND", limit)
    await engine.create_queue("q")
    n = ws_module.AUTO_WINDOW - 6  # all of them delivered without acks
    async with connect(ws_url) as socket:
        # Frames sent back to back, before any reply is read: the session reads ahead at most ``limit``.
        for i in range(n):
            await socket.send(json.dumps({"type": "publish", "queue": "q", "payload": f"m{i}", "req_id": i}))
        await socket.send(json.dumps({"type": "subscribe", "queue": "q", "req_id": "sub"}))
        replies: dict[Any, dict[str, Any]] = {}
        delivered: list[str] = []
        while len(replies) < n + 1 or len(delivered) < n:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame["type"] == "deliver":
                delivered.append(frame["payload"])
            else:
                assert frame["type"] == "ok", frame
                replies[frame["req_id"]] = frame
    assert sorted(k for k in replies if k != "sub") == list(range(n))
    assert delivered == [f"m{i}" for i in range(n)]


async def test_engine_ack_batch_checks_one_lock_owner_for_bare_ids(engine: RustQueue) -> None:
    await engine.create_queue("q")
    for i in range(4):
        await engine.push("q", "qrusty.message", f"m{i}")
    mine = [job.id for job in await engine.claim("q", 2, consumer_id="a")]
    theirs = [job.id for job in await engine.claim("q", 2, consumer_id="b")]
    result = await engine.ack_batch([mine[0], theirs[0], "missing", mine[1], mine[1]], consumer_id="a")
    assert [r.ok for r in result.results] == [True, False, False, True, False]
    assert [r.error_code for r in result.results] == [None, "LEASE_LOST", "JOB_NOT_FOUND", None, "INVALID_STATE"]
    assert (result.ok, result.failed) == (2, 3)
    assert (await engine.get_job(theirs[0])).state == "active"  # type: ignore[union-attr]
    mixed = await engine.ack_batch([theirs[1], {"id": theirs[0], "consumer_id": "b"}], consumer_id="a")
    assert [r.error_code for r in mixed.results] == ["LEASE_LOST", None]


async def test_ws_batch_ack_only_acks_this_sessions_locks(ws_url: str, engine: RustQueue) -> None:
    await engine.create_queue("q")
    await engine.push("q", "qrusty.message", "other")
    foreign = (await engine.claim("q", 1, consumer_id="someone-else"))[0].id
    async with connect(ws_url) as socket:
        await socket.send(json.dumps({"type": "publish", "queue": "q", "payload": "mine", "req_id": "p"}))
        await socket.send(json.dumps({"type": "subscribe", "queue": "q", "req_id": "s"}))
        delivered: str | None = None
        while delivered is None:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame["type"] == "deliver":
                delivered = frame["id"]
        await socket.send(json.dumps({"type": "batch-ack", "queue": "q", "ids": [delivered, foreign], "req_id": "a"}))
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame.get("req_id") == "a":
                break
    assert frame["acked"] == 1 and frame["failed"] == 1
    assert (await engine.get_job(foreign)).state == "active"  # type: ignore[union-attr]
    assert (await engine.get_job(delivered)).state == "completed"  # type: ignore[union-attr]


async def test_ws_direct_frames_of_every_length_encoding(ws_url: str, engine: RustQueue) -> None:
    await engine.create_queue("q")
    sizes = [0, 125, 126, 10_000, 65_535, 70_000]
    async with connect(ws_url, max_size=None) as socket:
        for i, size in enumerate(sizes):
            payload = f"{i}:" + "é" * size  # multi-byte UTF-8: frame lengths count bytes
            await socket.send(json.dumps({"type": "publish", "queue": "q", "payload": payload, "req_id": i}))
        await socket.send(json.dumps({"type": "subscribe", "queue": "q", "req_id": "sub"}))
        delivered: list[str] = []
        while len(delivered) < len(sizes):
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame["type"] == "deliver":
                delivered.append(frame["payload"])
    assert delivered == [f"{i}:" + "é" * size for i, size in enumerate(sizes)]


async def test_a_body_arriving_after_its_headers_is_waited_for(qserver: QrustyServer, engine: RustQueue) -> None:
    await engine.create_queue("q")
    request = _request("/publish", {"queue": "q", "payload": "late body"})
    split = request.index(b"\r\n\r\n") + 4
    reader, writer = await asyncio.open_connection("127.0.0.1", qserver.port)
    try:
        writer.write(request[:split])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(request[split:-3])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(request[-3:])
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.split()[1] == b"200"
    finally:
        writer.close()
    assert [job.data for job in await engine.claim("q", 5, consumer_id="c")] == ["late body"]
