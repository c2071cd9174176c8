"""A busy default port makes the qrusty API stand aside; a busy port chosen explicitly is an error."""

from __future__ import annotations

import socket

import pytest
from rustqueue_qrusty.server import NotServing, serve_qrusty

from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue


def _config(port: int, source: str) -> Config:
    config = Config.from_toml("[server]\nhost = '127.0.0.1'\n")
    config.set("qrusty.port", port, source=source)
    config.set("qrusty.memory_limit_mb", 4096, source="test")
    return config


async def test_busy_default_port_stands_aside_and_explicit_port_fails() -> None:
    engine = RustQueue(MemoryStorage())
    await engine.start()
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        async with serve_qrusty(engine, _config(port, "default")) as served:
            assert isinstance(served, NotServing)
            assert str(port) in served.address
        with pytest.raises(OSError):
            async with serve_qrusty(engine, _config(port, "--qrusty-port")):
                pass
    finally:
        holder.close()
        await engine.close()
