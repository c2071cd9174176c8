"""qrusty's WebSocket protocol at ``/ws``, spoken frame by frame against the real server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import httpx
from rustqueue_qrusty.server import serve_qrusty
from websockets.asyncio.client import ClientConnection, connect

from rustqueue_core.engine import RustQueue

from .conftest import qrusty_config


async def recv(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), within))
    assert isinstance(frame, dict)
    return frame


async def request(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """Send one request and return its reply, collecting nothing else (no subscription active)."""
    await ws.send(json.dumps(frame))
    return await recv(ws)


async def setup_queue(engine: RustQueue, name: str, n: int) -> list[str]:
    await engine.create_queue(name)
    return [
        await engine.push(name, "qrusty.message", f"m{i}", priority=0, backoff="fixed", backoff_delay_ms=0)
        for i in range(n)
    ]


async def test_malformed_frames_get_error_frames(ws_url: str, engine: RustQueue) -> None:
    await engine.create_queue("q")
    async with connect(ws_url) as ws:
        assert (await request(ws, {"type": "nope", "req_id": "r1"})) == {
            "type": "error",
            "code": "UNKNOWN_TYPE",
            "message": "unknown frame type 'nope'",
            "req_id": "r1",
        }
        await ws.send("{not json")
        error = await recv(ws)
        assert error["type"] == "error" and error["code"] == "BAD_REQUEST" and "req_id" not in error
        await ws.send("[1, 2]")
        assert (await recv(ws))["code"] == "BAD_REQUEST"
        bad = await request(ws, {"type": "publish", "req_id": 7, "queue": "q", "payload": "x", "priority": -1})
        assert bad["type"] == "error" and bad["req_id"] == 7 and bad["code"] == "BAD_REQUEST"
        missing = await request(ws, {"type": "publish", "req_id": "r2", "queue": "none", "payload": "x"})
        assert missing["code"] == "NOT_FOUND" and missing["req_id"] == "r2"
        foreign = await request(ws, {"type": "ack", "req_id": "r3", "queue": "q", "id": "unknown"})
        assert foreign["code"] == "NOT_FOUND"
        # the socket is still open and serves frames without req_id
        ok = await request(ws, {"type": "publish", "queue": "q", "payload": "x", "priority": 1})
        assert ok["type"] == "ok" and ok["id"] and "req_id" not in ok


async def test_subscribe_reply_comes_before_pushes_which_flow_without_credits(ws_url: str, engine: RustQueue) -> None:
    ids = await setup_queue(engine, "q", 3)
    async with connect(ws_url) as ws:
        reply = await request(ws, {"type": "subscribe", "queue": "q", "req_id": "s", "lock_timeout_secs": 300})
        assert reply["type"] == "ok" and reply["req_id"] == "s"
        delivered = [await recv(ws) for _ in range(3)]
        assert [d["id"] for d in delivered] == ids
        assert all(d["type"] == "deliver" and "req_id" not in d for d in delivered)
        job = await engine.get_job(ids[0])
        assert job is not None and job.state == "active" and job.lease_ms == 300_000


async def test_credit_mode_bounds_pushes(ws_url: str, engine: RustQueue) -> None:
    await setup_queue(engine, "q", 5)
    async with connect(ws_url) as ws:
        await request(ws, {"type": "subscribe", "queue": "q", "req_id": "s", "credits": 2})
        first = [await recv(ws) for _ in range(2)]
        assert all(f["type"] == "deliver" for f in first)
        try:
            extra = await recv(ws, within=0.5)
        except TimeoutError:
            extra = None
        assert extra is None  # credits spent: nothing more until granted
        assert (await engine.stats("q"))[0].locked == 2
        await ws.send(json.dumps({"type": "credit", "queue": "q", "credits": 2, "req_id": "c"}))
        frames = [await recv(ws) for _ in range(3)]
        assert [f["type"] for f in frames].count("deliver") == 2
        assert any(f.get("req_id") == "c" for f in frames)


async def test_closed_session_releases_its_messages(ws_url: str, engine: RustQueue) -> None:
    ids = await setup_queue(engine, "q", 2)
    async with connect(ws_url) as ws:
        await request(ws, {"type": "subscribe", "queue": "q", "req_id": "s"})
        delivered = [await recv(ws) for _ in range(2)]
        await ws.send(json.dumps({"type": "ack", "queue": "q", "id": delivered[0]["id"], "req_id": "a"}))
        assert (await recv(ws))["acked"] == 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while loop.time() < deadline:
        job = await engine.get_job(ids[1])
        if job is not None and job.state == "waiting":
            break
        await asyncio.sleep(0.02)
    assert job is not None and job.state == "waiting" and job.attempt == 0


async def test_renew_extends_the_lock_and_foreign_sessions_cannot_touch_it(ws_url: str, engine: RustQueue) -> None:
    [message_id] = await setup_queue(engine, "q", 1)
    async with connect(ws_url) as owner, connect(ws_url) as other:
        await request(owner, {"type": "subscribe", "queue": "q", "req_id": "s", "lock_timeout_secs": 5})
        assert (await recv(owner))["id"] == message_id
        renewed = await request(
            owner, {"type": "renew", "queue": "q", "id": message_id, "lock_timeout_secs": 600, "req_id": "r"}
        )
        assert renewed["type"] == "ok"
        job = await engine.get_job(message_id)
        assert job is not None and job.lease_expires_at is not None and job.started_at is not None
        assert (job.lease_expires_at - job.started_at).total_seconds() > 500
        for kind in ("ack", "nack", "renew"):
            error = await request(other, {"type": kind, "queue": "q", "id": message_id, "req_id": kind})
            assert error["type"] == "error" and error["code"] == "NOT_FOUND" and error["req_id"] == kind
        batch = await request(other, {"type": "batch-ack", "queue": "q", "ids": [message_id], "req_id": "b"})
        assert batch["acked"] == 0 and batch["failed"] == 1


async def test_dead_peer_is_dropped_and_its_messages_released(engine: RustQueue) -> None:
    config = qrusty_config(ws_ping_interval_secs=0.2, ws_ping_timeout_secs=0.3)
    async with serve_qrusty(engine, config) as server:
        [message_id] = await setup_queue(engine, "q", 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert status.startswith(b"HTTP/1.1 101")
        payload = json.dumps({"type": "subscribe", "queue": "q"}).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # one masked text frame
        await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        # This peer never answers pings: the server must drop it and release the pushed message.
        seen_active = False
        while loop.time() < deadline:
            job = await engine.get_job(message_id)
            assert job is not None
            seen_active = seen_active or job.state == "active"
            if seen_active and job.state == "waiting":
                break
            await asyncio.sleep(0.05)
        assert seen_active and job is not None and job.state == "waiting"
        closed = await asyncio.wait_for(reader.read(), 5)  # the server closed its side
        assert isinstance(closed, bytes)
        writer.close()


async def test_http_and_ws_share_operation_timings(http: httpx.AsyncClient, ws_url: str, engine: RustQueue) -> None:
    await engine.create_queue("q")
    async with connect(ws_url) as ws:
        await request(ws, {"type": "publish", "queue": "q", "payload": "x", "req_id": "p"})
    timings = (await http.get("/operation-timings")).json()["operations"]
    assert timings["publish"]["count"] == 1 and timings["publish"]["p99_ms"] >= 0
