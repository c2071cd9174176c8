"""The http transport: uvicorn serving ``create_app(engine, config)`` while the context is entered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

import uvicorn

from rustqueue_http.app import create_app

if TYPE_CHECKING:
    from rustqueue_core.config import Config
    from rustqueue_core.engine import RustQueue

logger = logging.getLogger("rustqueue.http")

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 6790
STARTUP_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process owner (the CLI) handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving so a busy port fails here with ``OSError`` (uvicorn would ``sys.exit``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then,
    # and without it Nagle plus delayed ACKs add ~40 ms to every response written in two parts.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def http_protocol() -> Any:
    """The httptools protocol with coalesced writes when httptools is installed, else uvicorn's choice."""
    try:
        from rustqueue_http.transport import CoalescingHttpToolsProtocol
    except ImportError:
        return "auto"
    return CoalescingHttpToolsProtocol


def app_protocol(engine: RustQueue, app: Any, config: Config | None) -> Any:
    """``http_protocol()`` serving push, pull and ack from the protocol (``fastpath``) when httptools is
    installed, the app allows it and ``http.fast_routes`` is not false."""
    if not _setting(config, "http.fast_routes", True):
        return http_protocol()
    try:
        from rustqueue_http.fastpath import FastRoutes, fast_protocol
    except ImportError:
        return http_protocol()
    fast = FastRoutes.for_app(engine, app)
    if fast is None:
        logger.debug("hot routes served by Litestar: the app has middleware or hooks of its own")
        return http_protocol()
    return fast_protocol(fast)


def head_as_get(app: Any) -> Any:
    """The ASGI app with HEAD requests answered as GET (as the original's router does): the app sees a
    GET, and uvicorn, whose own scope still says HEAD, sends the status and headers without the body."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await app(scope, receive, send)

    return asgi


def _setting(config: Config | None, key: str, default: Any) -> Any:
    return default if config is None else config.get(key, default)


@contextlib.asynccontextmanager
async def serve_http(engine: RustQueue, config: Config | None = None) -> AsyncIterator[HttpServer]:
    """Serve the HTTP API on ``server.host``:``server.http_port`` until the context exits."""
    host = str(_setting(config, "server.host", DEFAULT_HOST))
    port = int(_setting(config, "server.http_port", DEFAULT_PORT))
    server = HttpServer(engine, config, host=host, port=port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class HttpServer:
    """One uvicorn server over one bound socket; ``port`` is the real port (useful with port 0)."""

    def __init__(self, engine: RustQueue, config: Config | None, *, host: str, port: int) -> None:
        self.engine = engine
        self.config = config
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app = create_app(self.engine, self.config)
        self._sock = bind_socket(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        uv_config = uvicorn.Config(
            head_as_get(app),
            http=app_protocol(self.engine, app, self.config),
            lifespan="off",
            proxy_headers=False,
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=int(_setting(self.config, "http.graceful_timeout_s", 10)),
            timeout_keep_alive=int(_setting(self.config, "http.keep_alive_s", 5)),
            ws="websockets-sansio",
        )
        self._server = _Server(uv_config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="rustqueue-http")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped during startup")
            if loop.time() > deadline:
                raise TimeoutError("the HTTP server did not start in time")
            await asyncio.sleep(0.01)
        logger.info("HTTP API listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                logger.exception("HTTP server stopped with an error")
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
