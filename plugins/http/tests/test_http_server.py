"""The real server: ``rustqueue serve`` in a subprocess with http, websocket and auth, and the
in-process uvicorn transport."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from rustqueue_http.server import serve_http
from websockets.asyncio.client import connect

from rustqueue_core.config import Config

TOKEN = "serve-token"
STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    http_port, tcp_port = free_port(), free_port()
    env = {**os.environ, "RUSTQUEUE_AUTH_ENABLED": "true", "RUSTQUEUE_AUTH_TOKENS": f"{TOKEN},spare"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rustqueue_core",
            "serve",
            "--storage",
            "memory://",
            "--host",
            "127.0.0.1",
            "--http-port",
            str(http_port),
            "--tcp-port",
            str(tcp_port),
            "--plugins=http,websocket,auth",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"server exited with {process.returncode}:\n{output}")
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not become healthy in time")
            time.sleep(0.1)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()


async def test_served_api_with_auth_and_events(server: str):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server, timeout=10.0) as client:
        health = (await client.get("/api/v1/health")).json()
        assert (health["ok"], health["status"]) == (True, "healthy")
        denied = await client.post("/api/v1/queues/emails/jobs", json={"name": "send", "data": {}})
        assert denied.status_code == 401
        assert denied.json()["error"]["message"] == "Missing Authorization header"

        ws_url = server.replace("http://", "ws://") + f"/api/v1/events?token={TOKEN}"
        async with connect(ws_url) as ws:
            pushed = await client.post(
                "/api/v1/queues/emails/jobs", json={"name": "send", "data": {"n": 1}}, headers=auth
            )
            assert pushed.status_code == 201
            job_id = pushed.json()["id"]
            event = msgspec.json.decode(await asyncio.wait_for(ws.recv(), 5.0))
            assert (event["event"], event["job_id"], event["queue"]) == ("job.pushed", job_id, "emails")

            pulled = (await client.get("/api/v1/queues/emails/jobs", headers=auth)).json()["job"]
            assert pulled["id"] == job_id and pulled["lease_token"]
            acked = await client.post(f"/api/v1/jobs/{job_id}/ack", content=b"", headers=auth)
            assert acked.json() == {"ok": True}
            event = msgspec.json.decode(await asyncio.wait_for(ws.recv(), 5.0))
            assert (event["event"], event["job_id"]) == ("job.completed", job_id)

        missing = await client.get("/api/v1/definitely/not/here")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        openapi = (await client.get("/api/v1/openapi.json")).json()
        assert "/api/v1/events" in openapi["paths"]


async def test_in_process_transport_serves_and_stops(engine):
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}})
    async with serve_http(engine, config) as running:
        url = f"http://127.0.0.1:{running.port}"
        async with httpx.AsyncClient(base_url=url) as client:
            pushed = await client.post("/api/v1/queues/q/jobs", json=[{"name": "a", "data": 1}])
            assert pushed.status_code == 201 and len(pushed.json()["ids"]) == 1
        # A second server on the same port fails to bind with an OSError, not a process exit.
        with pytest.raises(OSError):
            async with serve_http(engine, Config(data={"server": {"host": "127.0.0.1", "http_port": running.port}})):
                pass
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"{url}/api/v1/health")


async def test_pipelined_requests_on_one_connection_are_all_answered(engine):
    """Responses are written once per loop iteration; several in flight must still come back whole."""
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}})
    body = b'{"name":"p","data":{}}'
    request = (
        b"POST /api/v1/queues/pipe/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    async with serve_http(engine, config) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(request * 3)
        await writer.drain()
        ids = []
        for _ in range(3):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            assert head.startswith(b"HTTP/1.1 201")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            ids.append(msgspec.json.decode(await reader.readexactly(length))["id"])
        writer.close()
        await writer.wait_closed()
    assert len(set(ids)) == 3
    assert (await engine.counts("pipe")).waiting == 3


async def test_bodies_arriving_in_several_parts_are_read_whole_and_size_checked(engine):
    """A chunked body reaches the app as several receive messages: it is joined, and the size limit
    still applies to what actually arrives (no Content-Length to bail out on early)."""
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}, "http": {"max_body_bytes": 4096}})

    async def parts(*chunks: bytes):
        for chunk in chunks:
            yield chunk
            await asyncio.sleep(0.01)  # separate TCP writes, so separate receive messages

    async with (
        serve_http(engine, config) as running,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}", timeout=10) as client,
    ):
        pushed = await client.post("/api/v1/queues/parts/jobs", content=parts(b'{"name":"split",', b'"data":{"n":7}}'))
        assert pushed.status_code == 201, pushed.text
        job = (await client.get(f"/api/v1/jobs/{pushed.json()['id']}")).json()["job"]
        assert job["name"] == "split" and job["data"] == {"n": 7}

        oversized = parts(b'{"name":"big","data":"', b"x" * 3000, b"y" * 3000, b'"}')
        response = await client.post("/api/v1/queues/parts/jobs", content=oversized)
        assert response.status_code == 413 and response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_head_requests_answer_like_get_without_a_body(engine):
    """HEAD is answered as GET: same status and headers (content-length included), no body; the next
    request on the same connection is read correctly after it."""
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}})
    async with serve_http(engine, config) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"HEAD /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\nGET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        get_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert head.startswith(b"HTTP/1.1 200") and get_head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":")[1]) for line in get_head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        body = msgspec.json.decode(await asyncio.wait_for(reader.readexactly(length), 5.0))
        assert body["ok"] is True
        assert b"content-type: application/json" in head.lower()
        writer.close()
        await writer.wait_closed()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as client:
            missing = await client.head("/api/v1/jobs/00000000-0000-0000-0000-000000000000")
            assert missing.status_code == 404 and missing.content == b""
