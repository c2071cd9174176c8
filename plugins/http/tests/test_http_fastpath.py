"""Push, pull and ack served from the protocol answer byte for byte what the Litestar routes answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.plugins import InitPluginProtocol
from rustqueue_auth.plugin import AuthPlugin
from rustqueue_auth.tokens import AuthConfig
from rustqueue_http import fastpath
from rustqueue_http.app import create_app
from rustqueue_http.fastpath import FastHttpProtocol, FastRoutes, match, pull_query
from rustqueue_http.server import serve_http

from rustqueue_core import hookimpl
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.models import Principal

from .conftest import make_engine

TOKEN = "fast-token"
JOB_ID = "0190a0a0-0000-7000-8000-000000000000"
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)")
_TOKEN = re.compile(rb'"lease_token":"[0-9a-f]+"')
_DATE = re.compile(rb"date: [^\r]+\r\n")
_ALLOW = re.compile(rb"allow: ([^\r]+)\r\n")


def request(method: str, path: str, body: bytes | None = None, headers: Sequence[str] = ()) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\n" + "".join(f"{h}\r\n" for h in headers)
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def normalized(raw: bytes) -> bytes:
    raw = _DATE.sub(b"date: D\r\n", raw)
    # Litestar lists allowed methods from a set: their order is not the point here.
    raw = _ALLOW.sub(lambda m: b"allow: " + b", ".join(sorted(m.group(1).split(b", "))) + b"\r\n", raw)
    raw = _TOKEN.sub(b'"lease_token":"T"', raw)
    return _TIME.sub(b"TIME", _UUID.sub(b"ID", raw))


async def exchange(port: int, data: bytes, responses: int = 1) -> bytes:
    """Send ``data`` on a fresh connection; read ``responses`` whole responses (or up to EOF)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        for _ in range(responses):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            if data.startswith(b"HEAD "):
                length = 0
            out += head + await asyncio.wait_for(reader.readexactly(length), 5.0)
    finally:
        writer.close()
    return out


@asynccontextmanager
async def served(engine: RustQueue, fast: bool) -> AsyncIterator[int]:
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}, "http": {"fast_routes": fast}})
    async with serve_http(engine, config) as running:
        yield running.port


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the requests the protocol serves itself."""
    calls: list[int] = []
    original = FastRoutes.serve

    async def serve(self: FastRoutes, cycle: Any, kind: int, target: str, query: Any) -> None:
        calls.append(kind)
        await original(self, cycle, kind, target, query)

    monkeypatch.setattr(FastRoutes, "serve", serve)
    return calls


SCRIPT: list[tuple[bytes, int]] = [
    (request("POST", "/api/v1/queues/fq/jobs", b'{"name":"a","data":{"n":1}}'), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b'[{"name":"b","data":2},{"name":"c","data":null,"priority":5}]'), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b"{x}"), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b"{}"), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b""), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b'{"name":"d","data":{},"max_attempts":-1}'), 1),
    (request("GET", "/api/v1/queues/fq/jobs"), 1),
    (request("GET", "/api/v1/queues/fq/jobs?count=5&lease_ms=60000&consumer_id=w-1"), 1),
    (request("GET", "/api/v1/queues/fq/jobs?count=1"), 1),
    (request("GET", "/api/v1/queues/fq/jobs?count=0"), 1),
    (request("GET", "/api/v1/queues/fq/jobs?wait_ms=20"), 1),
    (request("GET", "/api/v1/queues/fq/jobs?count=-1"), 1),
    (request("GET", "/api/v1/queues/fq/jobs?wait_ms=300001"), 1),
    (request("GET", "/api/v1/queues/fq/jobs?lease_ms=0"), 1),
    (request("POST", f"/api/v1/jobs/{JOB_ID}/ack", b""), 1),
    (request("POST", f"/api/v1/jobs/{JOB_ID.upper()}/ack", b'{"result":1}'), 1),
    (request("POST", f"/api/v1/jobs/{JOB_ID}/ack", b"{nope"), 1),
    (request("POST", f"/api/v1/jobs/{JOB_ID}/ack", b'{"lease_token":5}'), 1),
    (request("POST", "/api/v1/jobs/not-an-id/ack", b""), 1),
    (request("POST", "/api/v1/jobs/ack-batch/ack", b""), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b'{"name":"e","data":{}}', ["Origin: http://example.com"]), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b'{"name":"f","data":{}}', ["Connection: close"]), 1),
    (request("POST", "/api/v1/queues/fq/jobs/", b'{"name":"g","data":{}}'), 1),
    (request("GET", "/api/v1/queues/fq/jobs", b"{}"), 1),
    (request("HEAD", "/api/v1/queues/fq/jobs"), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b'{"name":"h","data":{}}') * 3, 3),
    (request("POST", "/api/v1/queues/a%20b/jobs", b'{"name":"j","data":{}}'), 1),
    (request("GET", "/api/v1/queues/a%20b/jobs"), 1),
    (request("POST", "/api/v1/queues/a%2Fb/jobs", b'{"name":"k","data":{}}'), 1),
    (request("POST", "/api/v1/queues/fq/jobs", b'{"name":"i","data":{}}').replace(b"HTTP/1.1", b"HTTP/1.0"), 1),
]


async def run_script(engine: RustQueue, fast: bool) -> list[bytes]:
    answers: list[bytes] = []
    async with served(engine, fast) as port:
        for data, responses in SCRIPT:
            answers.append(normalized(await exchange(port, data, responses)))
        # Ack what the pulls handed out, with and without a result.
        jobs = (await engine.list_jobs("fq", states=["active"], limit=100))[0]
        for i, job in enumerate(sorted(jobs, key=lambda j: j.name)):
            body = b"" if i % 2 else b'{"result":{"k":"v"}}'
            answers.append(normalized(await exchange(port, request("POST", f"/api/v1/jobs/{job.id}/ack", body))))
            answers.append(normalized(await exchange(port, request("POST", f"/api/v1/jobs/{job.id}/ack", body))))
    return answers


async def test_the_protocol_answers_as_litestar_does(counted: list[int]) -> None:
    litestar_engine, fast_engine = await make_engine(), await make_engine()
    try:
        expected = await run_script(litestar_engine, fast=False)
        assert counted == []
        answers = await run_script(fast_engine, fast=True)
    finally:
        await litestar_engine.close()
        await fast_engine.close()
    # Most of the script took the protocol's path, every route among it.
    assert len(counted) >= 25 and set(counted) == {fastpath._PUSH, fastpath._PULL, fastpath._ACK}
    for index, (got, want) in enumerate(zip(answers, expected, strict=True)):
        assert got == want, f"answer {index} differs: {got!r} != {want!r}"
    assert b"access-control-allow-origin: *" in answers[20]
    assert b"connection: close" in answers[21] and b"connection: close" in answers[len(SCRIPT) - 1]


class DenyReports:
    @hookimpl
    def rustqueue_authorize(self, principal: Principal, action: str, queue: str | None) -> bool | None:
        return False if (action, queue) == ("push", "reports") else None


async def run_auth_script(fast: bool) -> list[bytes]:
    engine = await make_engine([AuthPlugin(AuthConfig(enabled=True, tokens=[TOKEN])), DenyReports()])
    auth = [f"Authorization: Bearer {TOKEN}"]
    answers: list[bytes] = []
    try:
        async with served(engine, fast) as port:
            for data in (
                request("POST", "/api/v1/queues/aq/jobs", b'{"name":"a","data":{}}'),
                request("POST", "/api/v1/queues/aq/jobs", b'{"name":"a","data":{}}', ["Authorization: Bearer bad"]),
                request("POST", "/api/v1/queues/aq/jobs", b'{"name":"a","data":{}}', auth),
                request("POST", "/api/v1/queues/reports/jobs", b'{"name":"r","data":{}}', auth),
                request("GET", "/api/v1/queues/aq/jobs"),
                request("GET", "/api/v1/queues/aq/jobs", None, auth),
                request("POST", f"/api/v1/jobs/{JOB_ID}/ack", b""),
                request("POST", f"/api/v1/jobs/{JOB_ID}/ack", b"", auth),
            ):
                answers.append(normalized(await exchange(port, data)))
        assert (await engine.counts("reports")).waiting == 0
    finally:
        await engine.close()
    return answers


async def test_authentication_and_authorization_answer_as_litestar_does(counted: list[int]) -> None:
    expected = await run_auth_script(fast=False)
    answers = await run_auth_script(fast=True)
    assert len(counted) == 8
    assert answers == expected
    assert [a.split(b" ", 2)[1] for a in answers] == [b"401", b"401", b"201", b"403", b"401", b"200", b"401", b"404"]


async def test_an_internal_error_answers_500_like_litestar(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = []
    for fast in (False, True):
        engine = await make_engine()

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(engine, "claim", broken)
        try:
            async with served(engine, fast) as port:
                answers.append(normalized(await exchange(port, request("GET", "/api/v1/queues/q/jobs"))))
        finally:
            await engine.close()
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 500") and b"RuntimeError: boom" in answers[0]


class ExtraMiddleware(InitPluginProtocol):
    def on_app_init(self, app_config: Any) -> Any:
        app_config.middleware.append(lambda app: app)
        return app_config


async def test_apps_with_middleware_of_their_own_keep_the_litestar_path(engine: RustQueue) -> None:
    assert FastRoutes.for_app(engine, create_app(engine)) is not None
    assert FastRoutes.for_app(engine, create_app(engine, extra_plugins=[ExtraMiddleware()])) is None


async def test_the_transport_uses_the_fast_protocol_unless_disabled(engine: RustQueue) -> None:
    for fast in (True, False):
        config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}, "http": {"fast_routes": fast}})
        async with serve_http(engine, config) as running:
            protocol = running._server.config.http if running._server is not None else None
            assert isinstance(protocol, type) and issubclass(protocol, FastHttpProtocol) is fast


def test_routes_taken() -> None:
    assert match("POST", "/api/v1/queues/q/jobs") == (fastpath._PUSH, "q")
    assert match("GET", "/api/v1/queues/a b/jobs") == (fastpath._PULL, "a b")
    assert match("POST", f"/api/v1/jobs/{JOB_ID}/ack") == (fastpath._ACK, JOB_ID)
    for method, path in (
        ("PUT", "/api/v1/queues/q/jobs"),
        ("HEAD", "/api/v1/queues/q/jobs"),
        ("POST", "/api/v1/queues//jobs"),
        ("POST", "/api/v1/queues/jobs"),
        ("POST", "/api/v1/queues/a/b/jobs"),
        ("POST", "/api/v1/queues/q/jobs/"),
        ("POST", "/api/v1/jobs/ack-batch/ack"),
        ("GET", f"/api/v1/jobs/{JOB_ID}/ack"),
        ("POST", f"/api/v1/jobs/{JOB_ID}x/ack"),
    ):
        assert match(method, path) is None, (method, path)


def test_plain_pull_queries_only() -> None:
    assert pull_query(b"") == (1, None, None, None)
    assert pull_query(b"count=50&wait_ms=200&lease_ms=5&consumer_id=w.1") == (50, 200, 5, "w.1")
    assert pull_query(b"count=0") == (0, None, None, None)
    for query in (b"count=", b"count=01", b"count=-1", b"count=1&count=2", b"wait_ms=300001", b"lease_ms=0",
                  b"other=1", b"consumer_id=a%20b", b"consumer_id=", b"count", b"count=4294967296"):  # fmt: skip
        assert pull_query(query) is None, query
