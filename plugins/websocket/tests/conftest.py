"""Fixtures of the websocket plugin's tests: a real engine with the websocket plugin, served by the
http plugin (uvicorn, in-process) or by the plugin's own listener."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import rustqueue_http.plugin as http_plugin
import rustqueue_websocket.plugin as websocket_plugin
from rustqueue_http.server import serve_http

from rustqueue_core.builtin.memory import create_memory_storage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost


async def make_engine(plugins: Sequence[Any], config: dict[str, Any] | None = None) -> RustQueue:
    host = PluginHost.embedded(list(plugins))
    if config is not None:
        host.configure(Config(data=config))
    engine = RustQueue(create_memory_storage("memory://", {}), host=host)
    await engine.start()
    return engine


@pytest.fixture
async def ws_engine() -> AsyncIterator[RustQueue]:
    engine = await make_engine([http_plugin, websocket_plugin])
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def http_base(ws_engine: RustQueue) -> AsyncIterator[str]:
    """``ws://127.0.0.1:<port>`` of a real uvicorn server on a free port."""
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}})
    async with serve_http(ws_engine, config) as server:
        yield f"127.0.0.1:{server.port}"
