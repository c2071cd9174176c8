"""Fixtures of the dashboard's tests: a real engine on memory storage with the http and dashboard
plugins, an in-process client, and (for the browser tests) a real server and headless Chromium."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import rustqueue_dashboard.plugin as dashboard_plugin
import rustqueue_http.plugin as http_plugin
from litestar.testing import AsyncTestClient
from rustqueue_dashboard.state import state_for
from rustqueue_http.app import create_app

from rustqueue_core.builtin.memory import create_memory_storage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost
from rustqueue_core.settings import EngineSettings

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO_ROOT = Path(__file__).resolve().parents[3]


async def make_engine(plugins: Sequence[Any] = (), config: dict[str, Any] | None = None) -> RustQueue:
    host = PluginHost.embedded([http_plugin, dashboard_plugin, *plugins])
    if config is not None:
        host.configure(Config(data=config))
    engine = RustQueue(create_memory_storage("memory://", {}), host=host, settings=EngineSettings())
    await engine.start()
    return engine


async def close_engine(engine: RustQueue) -> None:
    state = state_for(engine)
    while state.logs in logging.getLogger().handlers:
        state.detach_logs()
    await engine.close()


@pytest.fixture
async def engine() -> AsyncIterator[RustQueue]:
    rq = await make_engine()
    try:
        yield rq
    finally:
        await close_engine(rq)


@pytest.fixture
async def client(engine: RustQueue) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(engine)) as test_client:
        yield test_client


# --------------------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], http_port: int, log: Path) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{http_port}"
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    workdir: Path, plugins: str, extra_env: dict[str, str] | None = None, config: str = ""
) -> ServerProcess:
    """``rustqueue serve`` on memory storage and free 127.0.0.1 ports, with ``config`` as its
    ``rustqueue.toml``; output goes to a file."""
    http_port = free_port()
    (workdir / "rustqueue.toml").write_text(config)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    cmd = [
        sys.executable, "-m", "rustqueue_core", "serve", "--storage", "memory://", f"--plugins={plugins}",
        "--host", "127.0.0.1", "--http-port", str(http_port), "--tcp-port", str(free_port()),
    ]  # fmt: skip
    log = workdir / f"server-{http_port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = ServerProcess(proc, http_port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "rustqueue ready" in server.output():
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(server)
    raise AssertionError("server did not start:\n" + server.output())


def stop_server(server: ServerProcess) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=5)


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        "--window-size=1440,900", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
