"""Server benchmark: ``rustqueue serve`` as a subprocess, driven from this process over TCP (single-op
and batch 50, pipelined NDJSON on one connection) and HTTP (single-op, keep-alive connections), against
Redis list operations (redis-py asyncio) measured in the same run.

Shapes, the same for every system (all jobs carry ``{"i": n}``):

* single-op: ``SINGLE_WORKERS`` coroutines each issue one command per job. rustqueue TCP shares one
  connection (up to that many commands in flight, which is what the pipelining client does); HTTP and
  Redis use one keep-alive connection per coroutine (redis-py has no multiplexing).
* batch 50: ``BATCH_WORKERS`` coroutines, each with one command (or one Redis pipeline) per 50 jobs.
* consume = claim + ack: rustqueue ``pull`` then ``ack`` / ``ack_batch``; Redis, the reliable-queue
  pattern, ``LMOVE`` to a processing list then ``LREM`` from it (also shown: ``RPOP`` with no ack).
* end-to-end: producers and consumers run at once until every job is acked.

Durability: rustqueue SQLite runs its default (WAL, synchronous=NORMAL: a commit survives a killed
process); Redis runs as configured on this machine (reported below; the default is RDB snapshots,
no append-only file, so an acknowledged LPUSH can be lost on a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from common import (
    Case,
    Result,
    Target,
    floor_target,
    merge,
    proc_status_mb,
    ratio_target,
    render_table,
    render_targets,
    run_interleaved,
    timed,
    write_section,
    write_targets,
)

BATCH = 50
DEFAULT_N = 10_000
SINGLE_WORKERS = 16
BATCH_WORKERS = 4
EXTRAS = ["webhooks", "metrics", "otel", "dashboard"]
STANDARD = ["http", "tcp", "websocket", "auth", "webhooks", "metrics", "dashboard"]
REDIS_URL = "redis://127.0.0.1:6379/0"
_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


# ----------------------------------------------------------------------------- server process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installed_plugins() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group="rustqueue")}


class Server:
    """One ``python -m rustqueue_core serve`` subprocess on free local ports."""

    def __init__(self, storage: str, plugins: list[str], workdir: Path, extra_args: Sequence[str] = ()) -> None:
        self.storage = storage
        self.extra_args = list(extra_args)
        self.plugins = [p for p in plugins if p in installed_plugins()]
        self.tcp_port = _free_port()
        self.http_port = _free_port()
        self.log = workdir / f"server-{uuid.uuid4().hex[:8]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 60.0) -> None:
        cmd = [
            sys.executable, "-m", "rustqueue_core", "serve", "--storage", self.storage,
            f"--plugins={','.join(self.plugins)}", "--host", "127.0.0.1",
            "--http-port", str(self.http_port), "--tcp-port", str(self.tcp_port), *self.extra_args,
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220 (returns at once)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            if b"rustqueue ready" in self.log.read_bytes():
                return
            await asyncio.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.asynccontextmanager
async def running(storage: str, plugins: list[str], workdir: Path) -> AsyncIterator[Server]:
    server = Server(storage, plugins, workdir)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- clients


class NdjsonConnection:
    """One TCP connection; any number of commands in flight, answered in order (PROTOCOL.md §4.1)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pending: list[asyncio.Future[dict[str, Any]]] = []
        self.task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def open(cls, port: int) -> NdjsonConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
        return cls(reader, writer)

    async def _read_loop(self) -> None:
        index = 0
        while True:
            line = await self.reader.readline()
            if not line:
                return
            self.pending[index].set_result(_decode.decode(line))
            index += 1
            if index > 4096:  # trim the answered prefix now and then
                del self.pending[:index]
                index = 0

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        self.writer.write(_json.encode(command) + b"\n")
        answer = await future
        if answer.get("ok") is False and "results" not in answer:
            raise RuntimeError(f"command failed: {answer}")
        return answer

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client (fixed Content-Length bodies), cheap enough not to be
    the bottleneck the way a general-purpose client would be."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.host = reader, writer, f"127.0.0.1:{port}".encode()

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        payload = b"" if body is None else _json.encode(body)
        head = f"{method} {path} HTTP/1.1\r\n".encode() + b"Host: " + self.host + b"\r\n"
        if body is not None:
            head += b"Content-Type: application/json\r\n"
        head += b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
        self.writer.write(head + payload)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        status = int(status_line.split()[1])
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return _decode.decode(data) if data else None

    async def close(self) -> None:
        self.writer.close()


def _job(i: int) -> dict[str, Any]:
    return {"name": "job", "data": {"i": i}}


def _spans(n: int, workers: int, step: int) -> list[range]:
    """Split job indexes 0..n into ``workers`` interleaved ranges of ``step``-sized chunks."""
    return [range(w * step, n, workers * step) for w in range(workers)]


async def _gather(*coros: Awaitable[None]) -> None:
    await asyncio.gather(*coros)


async def produce_and_consume(
    produce: Awaitable[None], consumers: Sequence[Awaitable[None]], finished: Callable[[], bool]
) -> None:
    """End-to-end: returns once every job is acked. Consumers still parked in a long poll when the
    last ack lands are cancelled then, so the poll timeout is not counted."""
    tasks = [asyncio.ensure_future(c) for c in consumers]
    try:
        await produce
        while not finished():
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            if all(t.done() for t in tasks):
                raise RuntimeError("consumers stopped before every job was acked")
            await asyncio.sleep(0.0005)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ----------------------------------------------------------------------------- rustqueue cases


def rustqueue_tcp_cases(servers: Server | list[Server], n: int, batch: int) -> dict[str, Case]:
    """TCP cases against one server, or several nodes sharing one storage (workers spread over them)."""
    nodes = servers if isinstance(servers, list) else [servers]
    workers = SINGLE_WORKERS if batch == 1 else BATCH_WORKERS
    acked = 0

    async def produce_into(conns: list[NdjsonConnection], queue: str) -> None:
        async def worker(conn: NdjsonConnection, starts: range) -> None:
            for start in starts:
                if batch == 1:
                    await conn.call({"cmd": "push", "queue": queue, "name": "job", "data": {"i": start}})
                else:
                    jobs = [_job(i) for i in range(start, min(n, start + batch))]
                    await conn.call({"cmd": "push_batch", "queue": queue, "jobs": jobs})

        spans = _spans(n, workers, batch)
        await _gather(*(worker(conns[w % len(conns)], spans[w]) for w in range(workers)))

    async def consume_from(conns: list[NdjsonConnection], queue: str, wait_ms: int | None, concurrency: int) -> None:
        async def worker(conn: NdjsonConnection) -> None:
            nonlocal acked
            while acked < n:
                command: dict[str, Any] = {"cmd": "pull", "queue": queue, "count": batch}
                if wait_ms:
                    command["wait_ms"] = wait_ms
                answer = await conn.call(command)
                jobs = answer.get("jobs") or ([answer["job"]] if answer.get("job") else [])
                if not jobs:
                    if not wait_ms:
                        return
                    continue
                if batch == 1:
                    await conn.call({"cmd": "ack", "id": jobs[0]["id"]})
                else:
                    await conn.call({"cmd": "ack_batch", "ids": [j["id"] for j in jobs]})
                acked += len(jobs)

        await _gather(*(worker(conns[w % len(conns)]) for w in range(concurrency)))

    async def with_conns(body: Callable[[list[NdjsonConnection], str], Awaitable[None]], prefill: bool) -> float:
        nonlocal acked
        acked = 0
        conns = [await NdjsonConnection.open(node.tcp_port) for node in nodes]
        queue = f"q{uuid.uuid4().hex[:12]}"
        try:
            if prefill:
                for start in range(0, n, 500):
                    jobs = [_job(i) for i in range(start, min(n, start + 500))]
                    await conns[0].call({"cmd": "push_batch", "queue": queue, "jobs": jobs})
            return await timed(lambda: body(conns, queue))
        finally:
            for conn in conns:
                await conn.close()

    async def e2e(producers: list[NdjsonConnection], queue: str) -> None:
        # Answers on a connection come in order, so a long-polling pull would hold up every command
        # behind it: each consuming worker gets its own connection, as a worker process would.
        consumers = [await NdjsonConnection.open(nodes[w % len(nodes)].tcp_port) for w in range(workers)]
        try:
            pullers = [consume_from([c], queue, 200, 1) for c in consumers]
            await produce_and_consume(produce_into(producers, queue), pullers, lambda: acked >= n)
        finally:
            for conn in consumers:
                await conn.close()

    shape = "single" if batch == 1 else f"batch{batch}"
    return {
        f"produce {shape}": lambda: with_conns(produce_into, False),
        f"consume {shape}": lambda: with_conns(lambda c, q: consume_from(c, q, None, workers), True),
        f"e2e {shape}": lambda: with_conns(e2e, False),
    }


def rustqueue_http_cases(server: Server, n: int) -> dict[str, Case]:
    async def produce_into(conns: list[HttpConnection], queue: str) -> None:
        async def worker(conn: HttpConnection, indexes: range) -> None:
            for i in indexes:
                await conn.call("POST", f"/api/v1/queues/{queue}/jobs", _job(i))

        await _gather(*(worker(c, r) for c, r in zip(conns, _spans(n, len(conns), 1), strict=True)))

    acked = 0

    async def consume_from(conns: list[HttpConnection], queue: str, wait_ms: int | None) -> None:
        path = f"/api/v1/queues/{queue}/jobs" + (f"?wait_ms={wait_ms}" if wait_ms else "")

        async def worker(conn: HttpConnection) -> None:
            nonlocal acked
            while acked < n:
                answer = await conn.call("GET", path)
                job = answer.get("job") if isinstance(answer, dict) else None
                if job is None:
                    if not wait_ms:
                        return
                    continue
                await conn.call("POST", f"/api/v1/jobs/{job['id']}/ack", {})
                acked += 1

        await _gather(*(worker(c) for c in conns))

    async def with_conns(body: Callable[[list[HttpConnection], str], Awaitable[None]], prefill: bool) -> float:
        nonlocal acked
        acked = 0
        port = server.http_port
        conns = [await HttpConnection.open(port) for _ in range(SINGLE_WORKERS)]
        queue = f"q{uuid.uuid4().hex[:12]}"
        try:
            if prefill:
                for start in range(0, n, 500):
                    jobs = [_job(i) for i in range(start, min(n, start + 500))]
                    await conns[0].call("POST", f"/api/v1/queues/{queue}/jobs", jobs)
            return await timed(lambda: body(conns, queue))
        finally:
            for conn in conns:
                await conn.close()

    async def e2e(conns: list[HttpConnection], queue: str) -> None:
        half = len(conns) // 2
        pullers = [consume_from([conn], queue, 200) for conn in conns[half:]]
        await produce_and_consume(produce_into(conns[:half], queue), pullers, lambda: acked >= n)

    return {
        "produce single": lambda: with_conns(produce_into, False),
        "consume single": lambda: with_conns(lambda c, q: consume_from(c, q, None), True),
        "e2e single": lambda: with_conns(e2e, False),
    }


# ----------------------------------------------------------------------------- Redis peer


def redis_cases(n: int, batch: int, *, reliable: bool) -> dict[str, Case]:
    import redis.asyncio as aioredis

    workers = SINGLE_WORKERS if batch == 1 else BATCH_WORKERS
    shape = "single" if batch == 1 else f"batch{batch}"

    def payload(i: int) -> bytes:
        return _json.encode({"id": str(uuid.uuid4()), **_job(i)})

    async def produce_into(client: Any, key: str) -> None:
        async def worker(starts: range) -> None:
            for start in starts:
                if batch == 1:
                    await client.lpush(key, payload(start))
                else:
                    pipe = client.pipeline(transaction=False)
                    for i in range(start, min(n, start + batch)):
                        pipe.lpush(key, payload(i))
                    await pipe.execute()

        await _gather(*(worker(r) for r in _spans(n, workers, batch)))

    done = 0

    async def consume_from(client: Any, key: str, blocking: bool) -> None:
        processing = key + ":processing"

        async def claim_ack_single() -> bool:
            if not reliable:
                value = await (client.brpop([key], timeout=0.2) if blocking else client.rpop(key))
                return value is not None
            if blocking:
                value = await client.blmove(key, processing, 0.2, "RIGHT", "LEFT")
            else:
                value = await client.lmove(key, processing, "RIGHT", "LEFT")
            if value is None:
                return False
            await client.lrem(processing, 1, value)
            return True

        async def claim_ack_batch() -> int:
            if not reliable:
                values = await client.rpop(key, batch)
                return len(values or [])
            pipe = client.pipeline(transaction=False)
            for _ in range(batch):
                pipe.lmove(key, processing, "RIGHT", "LEFT")
            values = [v for v in await pipe.execute() if v is not None]
            if values:
                pipe = client.pipeline(transaction=False)
                for value in values:
                    pipe.lrem(processing, 1, value)
                await pipe.execute()
            return len(values)

        async def worker() -> None:
            nonlocal done
            while done < n:
                got = (1 if await claim_ack_single() else 0) if batch == 1 else await claim_ack_batch()
                if not got:
                    if not blocking:
                        return
                    await asyncio.sleep(0.001)
                done += got

        await _gather(*(worker() for _ in range(workers)))

    async def with_client(body: Callable[[Any, str], Awaitable[None]], prefill: bool) -> float:
        nonlocal done
        done = 0
        client = aioredis.Redis.from_url(REDIS_URL, max_connections=2 * SINGLE_WORKERS)
        key = f"bench:{uuid.uuid4().hex[:12]}"
        try:
            if prefill:
                for start in range(0, n, 500):
                    await client.lpush(key, *[payload(i) for i in range(start, min(n, start + 500))])
            return await timed(lambda: body(client, key))
        finally:
            await client.delete(key, key + ":processing")
            await client.aclose()

    async def e2e(client: Any, key: str) -> None:
        await produce_and_consume(produce_into(client, key), [consume_from(client, key, True)], lambda: done >= n)

    cases: dict[str, Case] = {
        f"consume {shape}": lambda: with_client(lambda c, k: consume_from(c, k, False), True),
    }
    if reliable:
        cases[f"produce {shape}"] = lambda: with_client(produce_into, False)
        cases[f"e2e {shape}"] = lambda: with_client(e2e, False)
    return cases


def redis_persistence() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        aof = client.config_get("appendonly").get("appendonly")
        save = client.config_get("save").get("save")
        version = client.info("server").get("redis_version")
    finally:
        client.close()
    return f"Redis {version}, appendonly={aof}, save='{save}'"


# ----------------------------------------------------------------------------- driver


async def idle_rss(workdir: Path) -> tuple[float, list[str]]:
    async with running(f"sqlite:///{workdir}/idle.db", STANDARD, workdir) as server:
        await asyncio.sleep(3.0)
        return proc_status_mb(server.pid)["VmRSS"], server.plugins


WITHOUT_EXTRAS = "tcp sqlite (http,tcp)"
WITH_EXTRAS = "tcp sqlite (+webhooks,metrics,otel,dashboard)"
EXTRAS_ROUNDS = 6


async def extras_overhead(workdir: Path, n: int, rounds: int) -> tuple[list[Result], list[str]]:
    """TCP batch-50 throughput with the observability plugins loaded vs without (issue: within 10%)."""
    base = Server(f"sqlite:///{workdir}/base.db", ["http", "tcp"], workdir)
    extras = Server(f"sqlite:///{workdir}/extras.db", ["http", "tcp", *EXTRAS], workdir)
    try:
        await base.start()
        await extras.start()
        systems = [
            (WITHOUT_EXTRAS, rustqueue_tcp_cases(base, n, BATCH)),
            (WITH_EXTRAS, rustqueue_tcp_cases(extras, n, BATCH)),
        ]
        results = await run_interleaved("plugins", systems, n, rounds)
    finally:
        base.stop()
        extras.stop()
    return results, [p for p in extras.plugins if p in EXTRAS]


async def run(n: int, repeats: int, write: bool, command: str) -> list[Result]:
    merged: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory(prefix="rq-bench-server-") as tmp:
        workdir = Path(tmp)
        rss, standard_loaded = await idle_rss(workdir)
        for repeat in range(repeats):
            # Fresh servers per repeat; systems interleaved per case inside run_interleaved.
            sqlite = Server(f"sqlite:///{workdir}/jobs-{repeat}.db", ["http", "tcp"], workdir)
            memory = Server("memory://", ["http", "tcp"], workdir)
            servers = [sqlite, memory]
            try:
                for server in servers:
                    await server.start()
                systems: list[tuple[str, dict[str, Case]]] = [
                    ("rustqueue tcp sqlite", rustqueue_tcp_cases(sqlite, n, 1)),
                    ("rustqueue tcp sqlite", rustqueue_tcp_cases(sqlite, n, BATCH)),
                    ("rustqueue tcp memory", rustqueue_tcp_cases(memory, n, 1)),
                    ("rustqueue tcp memory", rustqueue_tcp_cases(memory, n, BATCH)),
                    ("rustqueue http sqlite", rustqueue_http_cases(sqlite, n)),
                    ("rustqueue http memory", rustqueue_http_cases(memory, n)),
                    ("redis list", redis_cases(n, 1, reliable=True)),
                    ("redis list", redis_cases(n, BATCH, reliable=True)),
                    ("redis RPOP (no ack)", redis_cases(n, 1, reliable=False)),
                    ("redis RPOP (no ack)", redis_cases(n, BATCH, reliable=False)),
                ]
                # Two entries of one system hold different cases: fold them into one per system.
                folded: dict[str, dict[str, Case]] = {}
                for system, cases in systems:
                    folded.setdefault(system, {}).update(cases)
                merge(merged, await run_interleaved("server", list(folded.items()), n, 1))
            finally:
                for server in servers:
                    server.stop()
        plugin_results, extras_loaded = await extras_overhead(workdir, n, EXTRAS_ROUNDS)
    results = list(merged.values())
    ratios: dict[str, tuple[str, str]] = {}
    for r in results:
        key = f"server/{r.case}/{r.system}"
        if r.system.startswith("rustqueue tcp"):
            ratios[key] = (f"server/{r.case}/redis list", "Redis list")
    plugin_ratios = {
        f"plugins/{r.case}/{WITH_EXTRAS}": (f"plugins/{r.case}/{WITHOUT_EXTRAS}", "without")
        for r in plugin_results
        if r.system == WITH_EXTRAS
    }
    targets: list[Target] = []
    for case, floor in (("produce batch50", 40_000), ("consume batch50", 27_000), ("e2e batch50", 19_000)):
        targets.append(ratio_target(f"TCP {case}, SQLite ≥ 5× Redis list", results, case, "rustqueue tcp sqlite",
                                    "redis list", 5.0))  # fmt: skip
        targets.append(floor_target(f"TCP {case}, SQLite ≥ {floor:,}/s", results, case, "rustqueue tcp sqlite", floor))
    for case, floor in (("produce single", 5_000), ("consume single", 2_500), ("e2e single", 1_600)):
        targets.append(
            floor_target(f"HTTP {case}, SQLite ≥ {floor:,}/s", results, case, "rustqueue http sqlite", floor)
        )
    for case in ("produce batch50", "consume batch50", "e2e batch50"):
        targets.append(ratio_target(f"TCP {case} with {'+'.join(extras_loaded)} ≥ 90% of without", plugin_results,
                                    case, WITH_EXTRAS, WITHOUT_EXTRAS, 0.9))  # fmt: skip
    targets.append(Target(f"idle server RSS ({','.join(standard_loaded)}) < 90 MB", f"{rss:.1f} MB", rss < 90))
    body = (
        f"{render_table(results, ratios)}\n\n"
        f"n = {n:,} jobs per case for every system, {repeats} repeats (fresh servers per repeat), systems "
        f"interleaved per case. Single-op: {SINGLE_WORKERS} concurrent requests (rustqueue TCP: one pipelined "
        f"connection; HTTP and Redis: {SINGLE_WORKERS} keep-alive connections; HTTP end-to-end: 8 producing, 8 "
        f"consuming). Batch 50: {BATCH_WORKERS} concurrent batches (one command, or one Redis pipeline, per 50 "
        f'jobs). rustqueue SQLite: WAL, synchronous=NORMAL. {redis_persistence()}. "redis list" consume is '
        f'LMOVE to a processing list + LREM (claim + ack); "redis RPOP" drops the job on pop. '
        f"Client and server share the machine's {os.cpu_count()} cores.\n\n"
        f"Plugin overhead (TCP batch 50, SQLite): the same cases against two fresh servers, one with "
        f"{', '.join(extras_loaded)} loaded (enabled, but no webhook subscribed and no OTLP endpoint "
        f"configured), alternating for {EXTRAS_ROUNDS} rounds (order swapped every round):\n\n"
        f"{render_table(plugin_results, plugin_ratios)}\n\n"
        f"Idle server with plugins {', '.join(standard_loaded)}: VmRSS {rss:.1f} MB.\n\n"
        f"Targets:\n\n{render_targets(targets)}"
    )
    print(body)
    if write:
        write_section("server", body, command)
        write_targets("server", targets, command)
    return results
