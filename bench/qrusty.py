"""qrusty-compatible API benchmark (the ``qrusty`` plugin): publish, and the publish → consume → ack
round trip, over HTTP keep-alive and over one WebSocket session with credits and batch-ack, on memory
and on durable SQLite (WAL, synchronous=NORMAL), with 100-byte and 10-KB payloads.

Shapes:

* HTTP publish: ``SINGLE_WORKERS`` keep-alive connections, one ``POST /publish`` per message.
* HTTP round trip: ``SINGLE_WORKERS`` connections, each looping ``POST /publish``, ``POST /consume``,
  ``POST /ack`` (three requests per message).
* WebSocket publish: one session, ``publish`` frames with up to ``WS_WINDOW`` replies outstanding.
* WebSocket round trip: one session subscribed with ``WS_CREDITS`` credits publishes while it consumes;
  delivered ids are acked with ``batch-ack`` once ``WS_ACK_MIN`` are waiting (or after a 2 ms lull),
  at most ``WS_ACK_MAX`` per frame, each batch-ack followed by a ``credit`` frame returning that many.

There is no peer: qrusty itself is not available here (its README advertises 50,000+ messages/s
without saying how it was measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import msgspec
from common import (
    Case,
    Result,
    Target,
    floor_target,
    merge,
    render_table,
    render_targets,
    run_interleaved,
    timed,
    write_section,
    write_targets,
)
from server import SINGLE_WORKERS, HttpConnection, Server, _free_port, installed_plugins

DEFAULT_N = 5_000
WS_WINDOW = 256
WS_CREDITS = 512
WS_ACK_MAX = 256
WS_ACK_MIN = 50
WS_ACK_LINGER_S = 0.002
PAYLOADS = {"100B": 100, "10KB": 10_240}
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _payload(size: int) -> str:
    return "x" * size


async def _create_queue(port: int) -> str:
    queue = f"q{uuid.uuid4().hex[:12]}"
    conn = await HttpConnection.open(port)
    try:
        await conn.call("POST", "/create-queue", {"name": queue, "config": {"ordering": "MaxFirst"}})
    finally:
        await conn.close()
    return queue


class WsSession:
    """One qrusty WebSocket session: requests correlated by ``req_id``; ``deliver`` frames collected."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.counter = itertools.count()
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.delivered: list[str] = []
        self.arrived = asyncio.Event()
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())
        self.writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        while True:
            await self.socket.send(await self.outbox.get())

    async def _read(self) -> None:
        async for raw in self.socket:
            frame = _decode(raw)
            req_id = frame.get("req_id")
            if req_id is not None:
                future = self.pending.pop(req_id, None)
                if future is not None and not future.done():
                    if frame.get("type") == "error":
                        future.set_exception(RuntimeError(f"qrusty error: {frame}"))
                    else:
                        future.set_result(frame)
            elif frame.get("type") == "deliver":
                self.delivered.append(frame["id"])
                self.arrived.set()

    def send(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        req_id = f"req-{next(self.counter)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[req_id] = future
        frame["req_id"] = req_id
        self.outbox.put_nowait(_encode(frame).decode())
        return future

    async def close(self) -> None:
        for task in (self.reader, self.writer):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.socket.close()


def qrusty_cases(server: Server, port: int, n: int, size: int, label: str) -> dict[str, Case]:
    payload = _payload(size)

    async def http_publish() -> float:
        queue = await _create_queue(port)
        conns = [await HttpConnection.open(port) for _ in range(SINGLE_WORKERS)]
        body = {"queue": queue, "priority": 0, "payload": payload, "max_retries": 3}

        async def worker(conn: HttpConnection, count: int) -> None:
            for _ in range(count):
                await conn.call("POST", "/publish", body)

        try:
            shares = [n // SINGLE_WORKERS + (1 if w < n % SINGLE_WORKERS else 0) for w in range(SINGLE_WORKERS)]
            return await timed(lambda: _all(worker(c, k) for c, k in zip(conns, shares, strict=True)))
        finally:
            for conn in conns:
                await conn.close()

    async def http_round_trip() -> float:
        queue = await _create_queue(port)
        conns = [await HttpConnection.open(port) for _ in range(SINGLE_WORKERS)]
        body = {"queue": queue, "priority": 0, "payload": payload, "max_retries": 3}

        async def worker(conn: HttpConnection, count: int) -> None:
            consumer = {"consumer_id": f"c{uuid.uuid4().hex[:8]}", "timeout_seconds": 30}
            done = 0
            while done < count:
                await conn.call("POST", "/publish", body)
                message = await conn.call("POST", f"/consume/{queue}", consumer)
                if message is None:  # another worker took ours; it will take one of ours in turn
                    continue
                await conn.call("POST", f"/ack/{queue}/{message['id']}", {"consumer_id": consumer["consumer_id"]})
                done += 1

        try:
            shares = [n // SINGLE_WORKERS + (1 if w < n % SINGLE_WORKERS else 0) for w in range(SINGLE_WORKERS)]
            return await timed(lambda: _all(worker(c, k) for c, k in zip(conns, shares, strict=True)))
        finally:
            for conn in conns:
                await conn.close()

    async def session() -> WsSession:
        import websockets

        socket = await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None)
        return WsSession(socket)

    async def publish_all(ws: WsSession, queue: str) -> None:
        window = asyncio.Semaphore(WS_WINDOW)
        futures: list[asyncio.Future[dict[str, Any]]] = []
        for _ in range(n):
            await window.acquire()
            future = ws.send({"type": "publish", "queue": queue, "payload": payload, "priority": 0})
            future.add_done_callback(lambda _f: window.release())
            futures.append(future)
        await asyncio.gather(*futures)

    async def ws_publish() -> float:
        queue = await _create_queue(port)
        ws = await session()
        try:
            return await timed(lambda: publish_all(ws, queue))
        finally:
            await ws.close()

    async def ws_round_trip() -> float:
        queue = await _create_queue(port)
        ws = await session()

        async def consume() -> None:
            acked = 0
            acks: list[asyncio.Future[dict[str, Any]]] = []
            while acked < n:
                if len(ws.delivered) < min(WS_ACK_MIN, n - acked):
                    # Gather a batch: wait for more deliveries, but ack what is there after a short lull.
                    ws.arrived.clear()
                    timeout = WS_ACK_LINGER_S if ws.delivered else 30.0
                    try:
                        await asyncio.wait_for(ws.arrived.wait(), timeout)
                        continue
                    except TimeoutError:
                        if not ws.delivered:
                            raise
                ids, ws.delivered[:] = ws.delivered[:WS_ACK_MAX], ws.delivered[WS_ACK_MAX:]
                acks.append(ws.send({"type": "batch-ack", "queue": queue, "ids": ids}))
                acks.append(ws.send({"type": "credit", "queue": queue, "credits": len(ids)}))
                acked += len(ids)
            await asyncio.gather(*acks)

        async def run() -> None:
            await ws.send({"type": "subscribe", "queue": queue, "credits": WS_CREDITS})
            await asyncio.gather(publish_all(ws, queue), consume())

        try:
            return await timed(run)
        finally:
            await ws.close()

    return {
        f"http publish {label}": http_publish,
        f"http round trip {label}": http_round_trip,
        f"ws publish {label}": ws_publish,
        f"ws round trip (credits, batch-ack) {label}": ws_round_trip,
    }


async def _all(coros: Any) -> None:
    await asyncio.gather(*coros)


async def run(n: int, repeats: int, write: bool, command: str) -> list[Result]:
    if "qrusty" not in installed_plugins():
        print("qrusty plugin not installed: skipping the qrusty benchmark", file=sys.stderr)
        return []
    merged: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory(prefix="rq-bench-qrusty-") as tmp:
        workdir = Path(tmp)
        for repeat in range(repeats):
            servers: dict[str, tuple[Server, int]] = {}
            for kind, storage in (("sqlite", f"sqlite:///{workdir}/qrusty-{repeat}.db"), ("memory", "memory://")):
                port = _free_port()
                servers[kind] = (Server(storage, ["qrusty"], workdir, ["--qrusty-port", str(port)]), port)
            try:
                for server, _ in servers.values():
                    await server.start()
                systems: list[tuple[str, dict[str, Case]]] = []
                for kind, (server, port) in servers.items():
                    cases: dict[str, Case] = {}
                    for label, size in PAYLOADS.items():
                        cases.update(qrusty_cases(server, port, n, size, label))
                    systems.append((f"rustqueue qrusty {kind}", cases))
                merge(merged, await run_interleaved("qrusty", systems, n, 1))
            finally:
                for server, _ in servers.values():
                    server.stop()
    results = list(merged.values())
    targets: list[Target] = [
        floor_target("WebSocket round trip, SQLite, batch-ack ≥ 20,000 msg/s (100 B)", results,
                     "ws round trip (credits, batch-ack) 100B", "rustqueue qrusty sqlite", 20_000),
        floor_target("HTTP single-op round trip (publish, consume, ack) ≥ 3,000 msg/s (SQLite, 100 B)", results,
                     "http round trip 100B", "rustqueue qrusty sqlite", 3_000),
    ]  # fmt: skip
    body = (
        f"{render_table(results)}\n\n"
        f"Rates are messages/s. n = {n:,} messages per case, {repeats} repeats (fresh servers per repeat), "
        f"cases interleaved between the two servers. HTTP: {SINGLE_WORKERS} keep-alive connections "
        f"(a round trip is three requests). WebSocket: one session; {WS_WINDOW} publishes in flight; "
        f"subscribed with {WS_CREDITS} credits, batch-ack once {WS_ACK_MIN} deliveries wait (or after a "
        f"{WS_ACK_LINGER_S * 1e3:g} ms lull; ≤ {WS_ACK_MAX} ids) then the same number of credits back. "
        f"`rustqueue serve --plugins=qrusty`; SQLite at its default "
        f"(WAL, synchronous=NORMAL).\n\n"
        f"Targets:\n\n{render_targets(targets)}"
    )
    print(body)
    if write:
        write_section("qrusty", body, command)
        write_targets("qrusty", targets, command)
    return results
