"""The startup gate: while the engine recovers a large store, ``/health`` says starting and every
mutating route (and WebSocket frame) answers 503 / an error frame; the gate opens when recovery ends."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from rustqueue_qrusty.server import serve_qrusty
from websockets.asyncio.client import connect

from rustqueue_core.builder import sqlite_url
from rustqueue_core.builtin.sqlite import create_storage
from rustqueue_core.engine import RustQueue

from .conftest import qrusty_config

STARTING_BODY_KEYS = {"status", "message", "retry_after_secs"}
JOBS = 20_000


async def _fill(url: str) -> None:
    rq = RustQueue(create_storage(url))
    await rq.start()
    try:
        await rq.create_queue("orders")
        for start in range(0, JOBS, 5_000):
            await rq.push_batch(
                "orders",
                [
                    {"name": "qrusty.message", "data": f"m{i}", "options": {"priority": i}}
                    for i in range(start, start + 5_000)
                ],
            )
    finally:
        await rq.close()


async def test_gate_while_a_large_store_recovers(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "big.db")
    await _fill(url)
    engine = RustQueue(create_storage(url))
    async with serve_qrusty(engine, qrusty_config()) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            health = await http.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "starting" and health.json()["message"]
            for method, path, body in (
                ("POST", "/publish", {"queue": "orders", "priority": 1, "payload": "x"}),
                ("POST", "/consume/orders", {"consumer_id": "c"}),
                ("POST", "/create-queue", {"name": "new"}),
                ("POST", "/update-queue", {"name": "orders", "config": {"allow_duplicates": False}}),
                ("POST", "/ack/orders/some-id", {"consumer_id": "c"}),
                ("POST", "/nack/orders/some-id", {"consumer_id": "c"}),
                ("POST", "/ack-batch/orders", {"consumer_id": "c", "message_ids": []}),
                ("POST", "/nack-batch/orders", {"consumer_id": "c", "message_ids": []}),
                ("POST", "/purge-queue/orders", None),
                ("DELETE", "/delete-queue/orders", None),
                ("POST", "/purge-all", None),
                ("POST", "/delete-all", None),
            ):
                response = await http.request(method, path, json=body)
                assert response.status_code == 503, (path, response.text)
                assert response.headers["retry-after"] == "2"
                assert set(response.json()) == STARTING_BODY_KEYS
                assert response.json()["status"] == "starting" and response.json()["retry_after_secs"] == 2
            assert (await http.get("/operation-timings")).status_code == 200
            # reads stay open while starting (they may show nothing yet)
            assert (await http.get("/stats")).status_code == 200
            assert (await http.get("/queues")).status_code == 200
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send(json.dumps({"type": "publish", "queue": "orders", "payload": "x", "req_id": "p"}))
                error = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert error["type"] == "error" and error["code"] == "STARTING" and error["req_id"] == "p"

            # Recovery runs while the listener answers: health polls see "starting" until it ends.
            started = time.perf_counter()
            recovery = asyncio.create_task(engine.start())
            states: list[str] = []
            while True:
                status = (await http.get("/health")).json()["status"]
                states.append(status)
                if status == "ok":
                    break
                assert not recovery.done() or engine.state == "ready"
                await asyncio.sleep(0.005)
            await recovery
            recovery_s = time.perf_counter() - started
            assert states[0] == "starting" and states[-1] == "ok", states
            assert recovery_s > 0  # measured; the store holds JOBS messages to load
            published = await http.post("/publish", json={"queue": "orders", "priority": 1, "payload": "x"})
            assert published.status_code == 200
            stats = (await http.get("/queue-stats/orders")).json()
            assert stats["pending"] == JOBS + 1
    await engine.close()
