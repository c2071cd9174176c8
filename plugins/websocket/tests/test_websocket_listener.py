"""The plugin's own listener, offered only when the http plugin is absent, and handshake authentication
on both servers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import rustqueue_auth.plugin as auth_plugin
import rustqueue_http.plugin as http_plugin
import rustqueue_websocket.plugin as websocket_plugin
from rustqueue_http.server import serve_http
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rustqueue_core.builtin.memory import create_memory_storage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost

AUTH = {"auth": {"enabled": True, "tokens": ["s3cret"]}}


async def started(plugins: list[Any], config: dict[str, Any] | None = None) -> RustQueue:
    host = PluginHost.embedded(plugins)
    if config is not None:
        host.configure(Config(data=config))
    engine = RustQueue(create_memory_storage("memory://", {}), host=host)
    return await engine.start()


async def recv(connection: Any) -> dict[str, Any]:
    frame = await asyncio.wait_for(connection.recv(), 5.0)
    decoded: dict[str, Any] = msgspec.json.decode(frame)
    return decoded


async def test_transport_offered_only_without_http():
    alone = await started([websocket_plugin])
    with_http = await started([http_plugin, websocket_plugin])
    try:
        assert [spec.name for spec in alone.host.transports()] == ["websocket"]
        assert [spec.name for spec in with_http.host.transports()] == ["http"]
    finally:
        await alone.close()
        await with_http.close()


async def test_own_listener_streams_events_and_answers_404_elsewhere():
    engine = await started([websocket_plugin])
    try:
        (spec,) = engine.host.transports()
        config = Config(data={"websocket": {"host": "127.0.0.1", "port": 0}})
        async with spec.factory(engine, config) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/api/v1/events") as ws:
                job_id = await engine.push("tasks", "task", {})
                event = await recv(ws)
                assert (event["event"], event["job_id"]) == ("job.pushed", job_id)
            with pytest.raises(InvalidStatus) as caught:
                async with connect(f"ws://127.0.0.1:{port}/elsewhere"):
                    pass
            assert caught.value.response.status_code == 404
    finally:
        await engine.close()


async def test_own_listener_requires_credentials_when_auth_is_on():
    engine = await started([websocket_plugin, auth_plugin], AUTH)
    try:
        (spec,) = engine.host.transports()
        config = Config(data={"websocket": {"host": "127.0.0.1", "port": 0}})
        async with spec.factory(engine, config) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            with pytest.raises(InvalidStatus) as caught:
                async with connect(f"ws://127.0.0.1:{port}/api/v1/events"):
                    pass
            assert caught.value.response.status_code == 401
            body = msgspec.json.decode(caught.value.response.body)
            assert body["error"] == {
                "code": "UNAUTHORIZED",
                "message": "Missing Authorization header",
                "details": None,
            }
            async with connect(f"ws://127.0.0.1:{port}/api/v1/events?token=s3cret") as ws:
                await engine.push("tasks", "task", {})
                assert (await recv(ws))["event"] == "job.pushed"
    finally:
        await engine.close()


async def test_http_port_stream_honours_header_and_query_token():
    engine = await started([http_plugin, websocket_plugin, auth_plugin], AUTH)
    config = Config(data={"server": {"host": "127.0.0.1", "http_port": 0}})
    try:
        async with serve_http(engine, config) as server:
            base = f"ws://127.0.0.1:{server.port}/api/v1/events"
            with pytest.raises(InvalidStatus) as caught:
                async with connect(base, additional_headers={"Authorization": "Bearer wrong"}):
                    pass
            assert caught.value.response.status_code == 401
            assert msgspec.json.decode(caught.value.response.body)["error"]["message"] == "Invalid bearer token"
            async with connect(base, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
                await engine.push("tasks", "task", {})
                assert (await recv(ws))["event"] == "job.pushed"
            async with connect(f"{base}?token=s3cret") as ws:
                await engine.push("tasks", "task", {})
                assert (await recv(ws))["event"] == "job.pushed"
    finally:
        await engine.close()
