"""Publishes read together are stored together: per-item outcomes, order and duplicates as if served
one by one; and the coalescing socket transport keeps every byte, in order, through close."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from rustqueue_qrusty.model import QrustyError
from rustqueue_qrusty.server import QrustyServer
from rustqueue_qrusty.wsprotocol import CoalescingTransport
from websockets.asyncio.client import connect

from rustqueue_core.engine import RustQueue


async def test_publish_many_isolates_each_item(qserver: QrustyServer, engine: RustQueue) -> None:
    await engine.create_queue("q")
    await engine.create_queue("dedup", allow_duplicates=False)
    outcomes = await qserver.service.publish_many(
        [
            {"queue": "q", "payload": "m0", "priority": 1},
            {"queue": "q", "payload": "bad", "priority": -1},
            {"queue": "missing", "payload": "x"},
            {"queue": "dedup", "payload": "same"},
            {"queue": "dedup", "payload": "same"},
            {"queue": "q", "payload": "m1", "priority": 1},
            "not an object",
        ]
    )
    m0, bad, missing, first, second, m1, junk = outcomes
    assert isinstance(bad, QrustyError) and bad.code == "BAD_REQUEST"
    assert isinstance(missing, QrustyError) and missing.status == 404
    assert isinstance(junk, QrustyError) and junk.code == "BAD_REQUEST"
    assert isinstance(first, dict) and isinstance(second, dict)
    assert second == {"id": first["id"], "duplicate": True}
    assert isinstance(m0, dict) and isinstance(m1, dict)
    claimed = await engine.claim("q", 10, consumer_id="c")
    assert [job.id for job in claimed] == [m0["id"], m1["id"]]  # publish order kept at equal priority
    assert [job.data for job in await engine.claim("dedup", 10, consumer_id="c")] == ["same"]


async def test_pipelined_publishes_get_one_reply_each(ws_url: str, engine: RustQueue) -> None:
    await engine.create_queue("q")
    frames: list[dict[str, Any]] = []
    for i in range(300):
        frames.append({"type": "publish", "req_id": f"p{i}", "queue": "q", "payload": f"m{i}", "priority": 0})
        if i % 50 == 25:
            frames.append({"type": "publish", "req_id": f"bad{i}", "queue": "q", "payload": 1})
            frames.append({"type": "credit", "req_id": f"c{i}", "queue": "q", "credits": 1})
    async with connect(ws_url) as ws:
        for frame in frames:  # all sent before any reply is read
            await ws.send(json.dumps(frame))
        replies: dict[str, dict[str, Any]] = {}
        while len(replies) < len(frames):
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["req_id"] not in replies
            replies[reply["req_id"]] = reply
    ids = [replies[f"p{i}"]["id"] for i in range(300)]
    assert all(replies[f"p{i}"]["type"] == "ok" and replies[f"p{i}"]["op"] == "publish" for i in range(300))
    assert {r["code"] for k, r in replies.items() if k.startswith("bad")} == {"BAD_REQUEST"}
    assert {r["code"] for k, r in replies.items() if k.startswith("c")} == {"NOT_SUBSCRIBED"}
    claimed = await engine.claim("q", 300, consumer_id="c")
    assert [job.id for job in claimed] == ids
    assert [job.data for job in claimed] == [f"m{i}" for i in range(300)]


async def test_coalescing_transport_delivers_everything_in_order_through_close() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    reader, writer = await asyncio.open_connection(sock=theirs)
    try:
        coalescing = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
        chunks = [f"frame-{i};".encode() for i in range(100)]
        for chunk in chunks:
            coalescing.write(chunk)
        assert coalescing.get_write_buffer_size() == sum(map(len, chunks))  # held until the loop turns
        await asyncio.sleep(0)
        coalescing.write(b"last")
        coalescing.close()  # pending bytes leave before the close
        received = await asyncio.wait_for(reader.read(), 5)
        assert received == b"".join(chunks) + b"last"
        assert coalescing.is_closing()
    finally:
        writer.close()
