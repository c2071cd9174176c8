"""Consecutive pulls and acks of one burst, started together, answer exactly as one after another."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from rustqueue_tcp.commands import CommandProcessor
from rustqueue_tcp.grouping import runs_writes_in_call_order
from rustqueue_tcp.server import TcpServer

from rustqueue_core.builder import RustQueueBuilder
from rustqueue_core.models import Capabilities

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(rb'"\d{4}-\d\d-\d\dT[0-9:.]+(Z|\+00:00)"')
_TOKEN = re.compile(rb'"lease_token":"[0-9a-f]+"')


def normalized(lines: list[bytes]) -> list[bytes]:
    """Ids become their order of first appearance; timestamps and lease tokens are blanked."""
    seen: dict[bytes, bytes] = {}

    def name(match: re.Match[bytes]) -> bytes:
        return seen.setdefault(match.group(0), b"id%d" % len(seen))

    return [_TOKEN.sub(b'"lease_token":"T"', _TIME.sub(b'"TIME"', _UUID.sub(name, line))) for line in lines]


@pytest.fixture(params=["memory", "sqlite"])
async def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
async def servers(storage_url: str, tmp_path: Path) -> AsyncIterator[tuple[TcpServer, TcpServer]]:
    """One server grouping commands, one running them strictly one after another, on twin storages."""
    engines = []
    started: list[TcpServer] = []
    for label in ("grouped", "sequential"):
        url = storage_url.replace("jobs.db", f"{label}.db")
        engine = RustQueueBuilder(url).create()
        await engine.start()
        engines.append(engine)
        server = await TcpServer(engine, "127.0.0.1", 0).start()
        started.append(server)
    assert started[0].processor.group_commands
    started[1].processor.group_commands = False
    try:
        yield started[0], started[1]
    finally:
        for server in started:
            await server.stop()
        for engine in engines:
            await engine.close()


async def exchange(server: TcpServer, bursts: list[list[Any]]) -> list[bytes]:
    """Send each burst as one write; read all its answers before the next burst. ``"$n"`` in a command
    stands for the n-th job id pushed so far."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    answers: list[bytes] = []
    ids: list[str] = []
    try:
        for burst in bursts:
            lines = [msgspec.json.encode(_resolve(command, ids)) + b"\n" for command in burst]
            writer.write(b"".join(lines))
            for _ in burst:
                line = await asyncio.wait_for(reader.readline(), 10.0)
                answers.append(line)
                decoded = msgspec.json.decode(line)
                ids.extend(decoded.get("ids") or ([decoded["id"]] if "id" in decoded else []))
    finally:
        writer.close()
    return answers


def _resolve(value: Any, ids: list[str]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        spelled = ids[int(value[1:].rstrip("U"))]
        return spelled.upper() if value.endswith("U") else spelled
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    return value


BURSTS: list[list[Any]] = [
    [{"cmd": "push_batch", "queue": "g", "jobs": [{"name": f"j{i}", "data": {"i": i}} for i in range(8)]}],
    [
        {"cmd": "pull", "queue": "g"},
        {"cmd": "pull", "queue": "g", "count": 2},
        {"cmd": "pull", "queue": "g", "wait_ms": 0},
        {"cmd": "pull", "queue": "nothing-here", "count": 3},
        {"cmd": "nope"},
        {"cmd": "pull", "queue": "g", "count": 0},
        {"cmd": "pull"},
    ],
    [
        {"cmd": "ack", "id": "$0", "result": {"r": 0}},
        {"cmd": "ack", "id": "$0"},
        {"cmd": "ack_batch", "ids": ["$1", "$2"]},
        {"cmd": "ack", "id": "$1U"},
        {"cmd": "ack_batch", "ids": ["$3", "$7"]},
        {"cmd": "ack", "id": "not-an-id"},
        {"cmd": "ack_batch", "ids": ["$3"]},
        {"cmd": "pull", "queue": "g", "count": 10},
        {"cmd": "ack_batch", "items": [{"id": "$4"}]},
        {"cmd": "ack", "id": "$5"},
        {"cmd": "stats", "queue": "g"},
    ],
]


async def test_grouped_bursts_answer_as_sequential_ones(servers: tuple[TcpServer, TcpServer]) -> None:
    grouped, sequential = servers
    expected = normalized(await exchange(sequential, BURSTS))
    answers = normalized(await exchange(grouped, BURSTS))
    for index, (got, want) in enumerate(zip(answers, expected, strict=True)):
        assert got == want, f"answer {index} differs: {got!r} != {want!r}"
    # The first pulls got the oldest jobs, in line order.
    first, second = (msgspec.json.decode(line) for line in answers[1:3])
    assert first["job"]["name"] == "j0" and [j["name"] for j in second["jobs"]] == ["j1", "j2"]


async def test_grouped_pulls_start_together(servers: tuple[TcpServer, TcpServer], storage_url: str) -> None:
    if not storage_url.startswith("sqlite"):
        pytest.skip("memory claims finish without suspending: nothing to overlap")
    grouped, _ = servers
    calls: list[int] = []
    engine: Any = grouped.engine
    original = engine.claim
    in_flight = 0

    async def claim(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight
        in_flight += 1
        calls.append(in_flight)
        try:
            return await original(*args, **kwargs)
        finally:
            in_flight -= 1

    engine.claim = claim
    await exchange(grouped, [[{"cmd": "pull", "queue": "x"}] * 4])
    assert max(calls) == 4


def test_only_storages_writing_in_call_order_group() -> None:
    class Declared:
        capabilities = Capabilities(ordered_writes=False)

    class Elsewhere:
        pass

    assert runs_writes_in_call_order(RustQueueBuilder("memory://").create().storage)
    assert not runs_writes_in_call_order(Declared())
    assert not runs_writes_in_call_order(Elsewhere())
    assert not CommandProcessor(type("E", (), {"storage": Elsewhere()})()).group_commands  # type: ignore[arg-type]
