"""``rustqueue serve`` on either event loop: the TCP auth flow over a real process, the loop choice and
the collector tuning."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from rustqueue_core.config import Config
from rustqueue_core.errors import ConfigError
from rustqueue_core.serve import EVENT_LOOP_ENV, GC_THRESHOLD0, GC_TUNING_ENV, loop_factory, tune_gc
from rustqueue_core.testing.server import free_port

TOKEN = "loop-token"
STARTUP_TIMEOUT = 20.0


def start_server(tmp_path: Path, event_loop: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        EVENT_LOOP_ENV: event_loop,
        "RUSTQUEUE_AUTH_ENABLED": "true",
        "RUSTQUEUE_AUTH_TOKENS": TOKEN,
    }
    command = [sys.executable, "-m", "rustqueue_core", "serve", "--storage", "memory://", "--host", "127.0.0.1",
               "--tcp-port", str(port), "--plugins=tcp,auth", "--log-level", "debug"]  # fmt: skip
    log = (tmp_path / f"serve-{event_loop}.log").open("wb")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while b"rustqueue ready" not in (tmp_path / f"serve-{event_loop}.log").read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail((tmp_path / f"serve-{event_loop}.log").read_text())
        time.sleep(0.05)
    return process, port


@pytest.fixture(params=["asyncio", "uvloop"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, str, str]]:
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    process, port = start_server(tmp_path, request.param)
    try:
        yield port, request.param, (tmp_path / f"serve-{request.param}.log").read_text()
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def test_auth_flow_over_a_served_process(served: tuple[int, str, str]) -> None:
    port, event_loop, log = served
    assert f"event loop: {event_loop}." in log
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def call(command: dict[str, object]) -> dict[str, object]:
        writer.write(msgspec.json.encode(command) + b"\n")
        line = await asyncio.wait_for(reader.readline(), 10.0)
        assert line.endswith(b"\n"), f"connection closed: {line!r}"
        answer: dict[str, object] = msgspec.json.decode(line)
        return answer

    try:
        denied = await call({"cmd": "push", "queue": "lq", "name": "j"})
        assert denied["ok"] is False
        assert await call({"cmd": "auth", "token": TOKEN}) == {"ok": True}
        pushed = await call({"cmd": "push", "queue": "lq", "name": "j", "data": {"x": 1}})
        pulled = await call({"cmd": "pull", "queue": "lq"})
        assert pulled["job"]["id"] == pushed["id"]  # type: ignore[index]
        assert await call({"cmd": "ack", "id": pushed["id"]}) == {"ok": True}
        batch = await call({"cmd": "push_batch", "queue": "lq", "jobs": [{"name": "b", "data": i} for i in range(3)]})
        assert len(batch["ids"]) == 3  # type: ignore[arg-type]
    finally:
        writer.close()


def test_loop_choice() -> None:
    assert loop_factory(Config(data={"server": {"event_loop": "asyncio"}})) is None
    with pytest.raises(ConfigError):
        loop_factory(Config(data={"server": {"event_loop": "trio"}}))
    try:
        import uvloop
    except ImportError:
        assert loop_factory(Config()) is None
        with pytest.raises(ConfigError):
            loop_factory(Config(data={"server": {"event_loop": "uvloop"}}))
    else:
        assert loop_factory(Config()) is uvloop.new_event_loop
        assert loop_factory(Config(data={"server": {"event_loop": "uvloop"}})) is uvloop.new_event_loop


def test_the_environment_overrides_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")
    assert loop_factory(Config(data={"server": {"event_loop": "uvloop"}})) is None


def test_gc_tuning_freezes_and_collects_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GC_TUNING_ENV, raising=False)
    before = gc.get_threshold()
    try:
        assert tune_gc(Config(data={"server": {"gc_tuning": False}})) is False
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        assert tune_gc(Config()) is True
        assert gc.get_threshold()[0] >= GC_THRESHOLD0 and gc.get_freeze_count() > 0
        monkeypatch.setenv(GC_TUNING_ENV, "off")
        gc.unfreeze()
        assert tune_gc(Config()) is False and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
