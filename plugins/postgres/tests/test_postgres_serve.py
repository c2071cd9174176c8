"""Two real ``rustqueue serve`` processes on one PostgreSQL schema: work is shared without double
delivery and a cron schedule fires each slot once across both."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

pytest.importorskip("rustqueue_http")

SCRIPT = Path(sys.executable).with_name("rustqueue")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(url: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    http_port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUSTQUEUE_")}
    command = [
        str(SCRIPT), "serve", "--plugins=http", "--storage", url, "--host", "127.0.0.1",
        "--http-port", str(http_port), "--tcp-port", str(_free_port()), "--grace", "2",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{http_port}"


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("rustqueue ready") or proc.poll() is not None:
            break
    if not line.startswith("rustqueue ready"):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"server did not become ready: {line!r}\n{err}")


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database_url(postgres_base_url: str) -> Iterator[str]:
    """A fresh database, so the storage URL carries no query (each server uses its default schema)."""
    name = f"rq_e2e_{secrets.token_hex(4)}"
    admin = postgres_base_url.split("?", 1)[0]
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    yield f"{admin.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def two_servers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    if not SCRIPT.exists() and shutil.which("rustqueue") is None:
        pytest.skip("the rustqueue command is not installed")
    procs: list[subprocess.Popen[str]] = []
    try:
        bases = []
        for _ in range(2):  # both start at once: they race on the schema migration too
            proc, base = _launch(database_url, tmp_path_factory.mktemp("serve"))
            procs.append(proc)
            bases.append(base)
        for proc in procs:
            _wait_ready(proc)
        yield bases
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)


def _drain(base: str) -> list[str]:
    taken: list[str] = []
    empty = 0
    with httpx.Client(base_url=base, timeout=10) as client:
        while empty < 3:
            reply = client.get("/api/v1/queues/shared/jobs", params={"count": 5})
            reply.raise_for_status()
            jobs = reply.json()["jobs"]
            if not jobs:
                empty += 1
                time.sleep(0.05)
                continue
            empty = 0
            for job in jobs:
                taken.append(job["id"])
                client.post(f"/api/v1/jobs/{job['id']}/ack", json={"result": base}).raise_for_status()
    return taken


def test_two_servers_share_work_without_double_delivery(two_servers: list[str]) -> None:
    first, second = two_servers
    with httpx.Client(base_url=first, timeout=10) as client:
        reply = client.post("/api/v1/queues/shared/jobs", json=[{"name": "job", "data": {"i": i}} for i in range(300)])
        assert reply.status_code == 201
        pushed = reply.json()["ids"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_drain, [first, second, first, second]))
    taken = [job_id for result in results for job_id in result]
    assert len(taken) == len(set(taken)) == len(pushed)
    assert set(taken) == set(pushed)
    assert results[1] or results[3], "the second server handed out work too"
    with httpx.Client(base_url=second, timeout=10) as client:
        counts = client.get("/api/v1/queues/shared/stats").json()["counts"]
    assert counts["completed"] == 300 and counts["active"] == 0 and counts["waiting"] == 0


def test_cron_schedule_fires_once_across_servers(two_servers: list[str]) -> None:
    first, second = two_servers
    if datetime.now(UTC).second >= 50:  # keep the check inside one cron minute
        time.sleep(61 - datetime.now(UTC).second)
    with httpx.Client(base_url=first, timeout=10) as client:
        reply = client.post(
            "/api/v1/schedules",
            json={"name": "every-minute", "queue": "cron", "job_name": "tick", "cron_expr": "* * * * *"},
        )
        assert reply.status_code == 201
    deadline = time.monotonic() + 15
    counts: dict[str, int] = {}
    with httpx.Client(base_url=second, timeout=10) as client:
        while time.monotonic() < deadline:
            counts = client.get("/api/v1/queues/cron/stats").json()["counts"]
            if counts.get("waiting", 0) >= 1:
                break
            time.sleep(0.2)
        time.sleep(2.5)  # both servers tick at least twice more
        counts = client.get("/api/v1/queues/cron/stats").json()["counts"]
        schedule = client.get("/api/v1/schedules/every-minute").json()["schedule"]
    assert counts["waiting"] == 1
    assert schedule["execution_count"] == 1
