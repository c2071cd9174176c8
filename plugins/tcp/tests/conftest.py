"""Fixtures of the tcp plugin tests: a real server over a real engine, and raw socket connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest_asyncio
from rustqueue_tcp.server import TcpServer

TIMEOUT = 10.0


class RawConnection:
    """A plain TCP connection speaking the wire protocol byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, *commands: Any) -> None:
        self.writer.write(b"".join(msgspec.json.encode(c) + b"\n" for c in commands))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> Any:
        line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        assert line.endswith(b"\n"), f"connection closed, got {line!r}"
        return msgspec.json.decode(line)

    async def recv_line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def call(self, command: Any) -> Any:
        await self.send(command)
        return await self.recv()

    async def read_exactly(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), TIMEOUT)

    async def at_eof(self) -> bool:
        """True once the server closed the connection (reads whatever is left first)."""
        data = await asyncio.wait_for(self.reader.read(), TIMEOUT)
        return data == b"" or self.reader.at_eof()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (ConnectionError, TimeoutError):
            pass


ServerFactory = Callable[..., Awaitable[TcpServer]]


@pytest_asyncio.fixture
async def tcp_server_factory() -> AsyncIterator[ServerFactory]:
    servers: list[TcpServer] = []

    async def start(engine: Any, **kwargs: Any) -> TcpServer:
        server = TcpServer(engine, "127.0.0.1", 0, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await asyncio.wait_for(server.stop(), TIMEOUT)


@pytest_asyncio.fixture
async def engine(engine_factory: Any) -> Any:
    return await engine_factory()


@pytest_asyncio.fixture
async def server(engine: Any, tcp_server_factory: ServerFactory) -> TcpServer:
    return await tcp_server_factory(engine)


@pytest_asyncio.fixture
async def connect(server: TcpServer) -> AsyncIterator[Callable[..., Awaitable[RawConnection]]]:
    opened: list[RawConnection] = []

    async def open_connection(target: TcpServer | None = None) -> RawConnection:
        port = (target or server).bound_port
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        conn = RawConnection(reader, writer)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        await conn.close()


@pytest_asyncio.fixture
async def conn(connect: Callable[..., Awaitable[RawConnection]]) -> RawConnection:
    return await connect()
