"""Fixtures of the qrusty plugin's tests: an in-process engine with the qrusty server on a free port,
and a real ``rustqueue serve`` subprocess for qrusty's own client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rustqueue_qrusty.server import QrustyServer, serve_qrusty

from rustqueue_core.builtin.memory import create_memory_storage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.settings import EngineSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def qrusty_config(**qrusty: Any) -> Config:
    return Config(data={"server": {"host": "127.0.0.1"}, "qrusty": {"port": 0, **qrusty}})


@pytest.fixture
async def engine() -> AsyncIterator[RustQueue]:
    rq = RustQueue(
        create_memory_storage("memory://", {}),
        settings=EngineSettings(tick_interval_ms=100, stall_check_interval_ms=100),
    )
    await rq.start()
    try:
        yield rq
    finally:
        await rq.close(grace=1.0)


@pytest.fixture
async def qserver(engine: RustQueue) -> AsyncIterator[QrustyServer]:
    async with serve_qrusty(engine, qrusty_config()) as server:
        yield server


@pytest.fixture
async def http(qserver: QrustyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{qserver.port}", timeout=10) as client:
        yield client


@pytest.fixture
def ws_url(qserver: QrustyServer) -> str:
    return f"ws://127.0.0.1:{qserver.port}/ws"


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, http_port: int) -> None:
        self.proc = proc
        self.port = port
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.log = log
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    workdir: Path, extra_env: dict[str, str] | None = None, storage: str | None = "memory://"
) -> ServerProcess:
    """``rustqueue serve --plugins=qrusty,http`` on free ports; output goes to a file (never a pipe
    nobody drains)."""
    port, http_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    cmd = [
        sys.executable,
        "-m",
        "rustqueue_core",
        "serve",
        *(["--storage", storage] if storage is not None else []),
        "--plugins=qrusty,http",
        "--host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--tcp-port",
        str(free_port()),
        "--qrusty-port",
        str(port),
    ]
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = ServerProcess(proc, port, log, http_port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "rustqueue ready" in server.output():
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=5)
    raise AssertionError("server did not start:\n" + server.output())


def stop_server(server: ServerProcess) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("qrusty-server"))
    try:
        yield server
    finally:
        stop_server(server)
