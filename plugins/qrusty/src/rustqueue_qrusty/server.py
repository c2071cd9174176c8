"""The qrusty transport: its own uvicorn listener on ``qrusty.port`` (6784) serving :func:`create_app`.

qrusty's clients address the API at the server root (``/health``, ``/publish``, ``/ws``) on their own
port, which would collide with rustqueue's API and landing page on the http port; a second listener
keeps both APIs at the paths their clients expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

import uvicorn
from rustqueue_http.server import bind_socket, http_protocol

from rustqueue_qrusty import dashboard_api
from rustqueue_qrusty.app import create_app
from rustqueue_qrusty.logstream import LogHub
from rustqueue_qrusty.memory import install_monitor, memory_sampler
from rustqueue_qrusty.service import QrustyService
from rustqueue_qrusty.settings import QrustySettings, qrusty_settings
from rustqueue_qrusty.wsprotocol import CoalescingWebSocketProtocol

if TYPE_CHECKING:
    from rustqueue_qrusty.fasthttp import FastRoutes

logger = logging.getLogger("rustqueue.qrusty")

STARTUP_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process owner handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class QrustyServer:
    """Serves the qrusty API over one bound socket; ``port`` is the real port (useful with port 0)."""

    def __init__(self, engine: Any, settings: QrustySettings) -> None:
        self.engine = engine
        self.settings = settings
        self.host = settings.host
        self.port = settings.port
        self.service = QrustyService(engine)
        #: The hot HTTP routes served from the protocol (None without httptools).
        self.fast: FastRoutes | None = None
        self.logs: LogHub | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        monitor = install_monitor(self.engine, self.settings.memory)
        await self._stack.enter_async_context(
            memory_sampler(self.engine, monitor, self.settings.memory.check_interval_s)
        )
        self.logs = LogHub(asyncio.get_running_loop())
        self.logs.install()
        sock = bind_socket(self.host, self.port)
        self._stack.callback(sock.close)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.service, self.logs),
            http=self._http_protocol(),
            lifespan="off",
            proxy_headers=False,
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
            ws=CoalescingWebSocketProtocol,
            # Frames are small JSON; compressing each one costs more CPU than it saves on the wire,
            # and qrusty's clients do not need it.
            ws_per_message_deflate=False,
            ws_ping_interval=self.settings.ws_ping_interval_s,
            ws_ping_timeout=self.settings.ws_ping_timeout_s,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="rustqueue-qrusty")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the qrusty server stopped during startup")
            if loop.time() > deadline:
                raise TimeoutError("the qrusty server did not start in time")
            await asyncio.sleep(0.01)
        if monitor is not None and monitor.limit:
            logger.info(
                "qrusty memory budget %.0f MB (warning %.0f%%, critical %.0f%%, exit %.0f%%)",
                monitor.limit / 1048576,
                self.settings.memory.pressure * 100,
                self.settings.memory.critical * 100,
                self.settings.memory.exit * 100,
            )
        dashboard_api.register(self.engine, self)
        logger.info("qrusty API listening on http://%s:%d (WebSocket /ws)", self.host, self.port)

    def _http_protocol(self) -> Any:
        """The hot routes served from the protocol (``fasthttp``) when httptools is installed."""
        try:
            from rustqueue_qrusty.fasthttp import FastRoutes, fast_protocol
        except ImportError:
            return http_protocol()
        self.fast = FastRoutes(self.service)
        return fast_protocol(self.fast)

    async def stop(self) -> None:
        dashboard_api.unregister(self.engine)
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                logger.exception("qrusty server stopped with an error")
            self._task = None
        if self.fast is not None:
            await self.fast.drain()
        if self.logs is not None:
            self.logs.uninstall()
        self.service.close()
        await self._stack.aclose()


class NotServing:
    """What the transport yields when it stood aside (its default port was taken)."""

    def __init__(self, address: str) -> None:
        self.address = address


@contextlib.asynccontextmanager
async def serve_qrusty(engine: Any, config: Any = None) -> AsyncIterator[QrustyServer | NotServing]:
    """Serve the qrusty API on ``server.host``:``qrusty.port`` until the context exits.

    When the port was not chosen explicitly and the default 6784 is taken (another server on this
    host), the qrusty API stands aside with a warning rather than stopping the whole server; an
    explicitly chosen port that is busy is an error, as for every transport."""
    settings = qrusty_settings(config)
    server = QrustyServer(engine, settings)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        if settings.port_explicit or exc.errno != errno.EADDRINUSE:
            raise
        logger.warning(
            "qrusty API not started: port %d is in use; choose a port with --qrusty-port, QRUSTY_PORT or [qrusty] port",
            settings.port,
        )
        yield NotServing(f"not started (port {settings.port} in use)")
        return
    except BaseException:
        await server.stop()
        raise
    try:
        yield server
    finally:
        await server.stop()
