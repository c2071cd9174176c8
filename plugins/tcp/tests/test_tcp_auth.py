"""Authentication on the TCP port, with the auth plugin on a real plugin host, and the plugin entry."""

from __future__ import annotations

from typing import Any

import pytest_asyncio
from rustqueue_auth.plugin import AuthPlugin
from rustqueue_auth.tokens import AuthConfig
from rustqueue_tcp import binary, plugin
from rustqueue_tcp.server import TcpServer
from rustqueue_tcp.wire import AUTH_REQUIRED_MESSAGE

from rustqueue_core.models import TransportSpec
from rustqueue_core.plugins import PluginHost

TOKEN = "valid-token-123"


@pytest_asyncio.fixture
async def auth_server(engine_factory: Any, tcp_server_factory: Any) -> TcpServer:
    host = PluginHost.embedded([AuthPlugin(AuthConfig(enabled=True, tokens=[TOKEN]))])
    engine = await engine_factory(host=host)
    server: TcpServer = await tcp_server_factory(engine)
    return server


async def test_commands_need_auth_first(auth_server: TcpServer, connect: Any) -> None:
    conn = await connect(auth_server)
    for command in (
        {"cmd": "push", "queue": "q", "name": "j"},
        {"cmd": "stats", "queue": "q"},
        {"cmd": "nope"},
    ):
        answer = await conn.call(command)
        assert answer == {"ok": False, "error": {"code": "UNAUTHORIZED", "message": AUTH_REQUIRED_MESSAGE}}


async def test_auth_flow(auth_server: TcpServer, connect: Any) -> None:
    conn = await connect(auth_server)
    wrong = await conn.call({"cmd": "auth", "token": "wrong-token"})
    assert wrong["error"] == {"code": "UNAUTHORIZED", "message": "Invalid authentication token"}
    missing = await conn.call({"cmd": "auth"})
    assert missing["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "Missing 'token' field in auth command",
    }
    assert (await conn.call({"cmd": "push", "queue": "q", "name": "j"}))["error"]["code"] == "UNAUTHORIZED"
    assert await conn.call({"cmd": "auth", "token": TOKEN}) == {"ok": True}
    pushed = await conn.call({"cmd": "push", "queue": "auth-q", "name": "j", "data": {"x": 1}})
    pulled = await conn.call({"cmd": "pull", "queue": "auth-q"})
    assert pulled["job"]["id"] == pushed["id"]
    assert await conn.call({"cmd": "ack", "id": pushed["id"]}) == {"ok": True}
    # Already authenticated: auth again is a no-op success (the Node and Go SDKs may resend it).
    assert await conn.call({"cmd": "auth", "token": TOKEN}) == {"ok": True}


async def test_auth_in_the_same_burst_applies_to_later_lines(auth_server: TcpServer, connect: Any) -> None:
    conn = await connect(auth_server)
    await conn.send(
        {"cmd": "push", "queue": "b", "name": "j"},
        {"cmd": "auth", "token": TOKEN},
        {"cmd": "push", "queue": "b", "name": "j"},
    )
    answers = [await conn.recv() for _ in range(3)]
    assert answers[0]["error"]["code"] == "UNAUTHORIZED"
    assert answers[1] == {"ok": True}
    assert answers[2]["ok"] is True


async def test_many_unauthenticated_connections_do_not_lock_out(auth_server: TcpServer, connect: Any) -> None:
    for _ in range(8):
        await connect(auth_server)
    conn = await connect(auth_server)
    assert await conn.call({"cmd": "auth", "token": TOKEN}) == {"ok": True}


async def test_binary_frame_before_auth_is_refused_and_closes(auth_server: TcpServer, connect: Any) -> None:
    conn = await connect(auth_server)
    await conn.send_raw(binary.encode_pull_frame("q", 1))
    message = b"Authentication required before binary commands"
    assert await conn.read_exactly(3 + len(message)) == b"\x01" + len(message).to_bytes(2, "big") + message
    assert await conn.at_eof()


async def test_binary_after_auth_works(auth_server: TcpServer, connect: Any) -> None:
    conn = await connect(auth_server)
    assert await conn.call({"cmd": "auth", "token": TOKEN}) == {"ok": True}
    await conn.send_raw(binary.encode_pull_frame("q", 1))
    assert await conn.read_exactly(5) == b"\x00\x00\x00\x00\x00"


class _Config:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


async def test_transport_spec_and_factory(engine: Any, connect: Any) -> None:
    spec = plugin.rustqueue_transports()
    assert isinstance(spec, TransportSpec)
    assert (spec.name, spec.default_bind) == ("tcp", "0.0.0.0:6789")
    async with spec.factory(engine, _Config({"server.host": "127.0.0.1", "server.tcp_port": 0})) as server:
        assert isinstance(server, TcpServer) and server.host == "127.0.0.1"
        conn = await connect(server)
        assert (await conn.call({"cmd": "push", "queue": "f", "name": "j"}))["ok"] is True
    default = plugin.create_server(engine, None)
    assert (default.host, default.port) == ("0.0.0.0", 6789)
