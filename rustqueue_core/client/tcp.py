"""TCP clients of the rustqueue server (newline-delimited JSON on port 6789).

``AsyncTcpClient`` pipelines: any number of requests may be in flight on one connection and answers
are matched first-in, first-out, so ``asyncio.gather`` over many calls costs one round trip per write
burst. ``TcpClient`` is the blocking equivalent (``pipeline()`` sends many commands in one write).
Both authenticate with ``token`` when given and reconnect on the next call after a broken connection.
Requests in flight when a connection breaks fail with :class:`RustQueueConnectionError` (they are not
replayed: a push might have been committed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from rustqueue_core.client import _tcp_commands as cmds
from rustqueue_core.client._common import RustQueueConnectionError, raise_for_body
from rustqueue_core.errors import RustQueueError

DEFAULT_PORT = 6789
#: Longest answer line accepted (a big pull can be large).
MAX_LINE = 256 * 1024 * 1024
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()
_DRAIN_ABOVE = 1 << 20


def parse_tcp_url(url: str) -> tuple[str, int, str | None]:
    """``tcp://host:port?token=…`` → (host, port, token)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "tcp":
        raise ValueError(f"expected a tcp:// URL, got {url!r}")
    token = urllib.parse.parse_qs(parsed.query).get("token", [None])[0]
    return parsed.hostname or "127.0.0.1", parsed.port or DEFAULT_PORT, token


class _TcpApi:
    """The command methods; subclasses implement ``_call`` (blocking or as a coroutine)."""

    def _call(self, call: cmds.Call) -> Any:
        raise NotImplementedError

    # jobs
    def push(self, queue: str, name: str, data: Any = None, **options: Any) -> Any:
        """Push one job (options are sent nested under ``options``); returns its id."""
        return self._call(cmds.push(queue, name, data, options))

    def push_batch(self, queue: str, jobs: Sequence[Mapping[str, Any]]) -> Any:
        """Push ``[{"name", "data"?, "options"? or flattened options}]`` atomically; returns the ids."""
        return self._call(cmds.push_batch(queue, jobs))

    def pull(
        self,
        queue: str,
        count: int | None = None,
        *,
        wait_ms: int | None = None,
        consumer_id: str | None = None,
        lease_ms: int | None = None,
    ) -> Any:
        """Claim up to ``count`` jobs (list of job dicts, each with its ``lease_token``)."""
        return self._call(cmds.pull(queue, count, wait_ms, consumer_id, lease_ms))

    def ack(self, job_id: str, result: Any = None, *, lease_token: str | None = None) -> Any:
        return self._call(cmds.ack(job_id, result, lease_token))

    def ack_batch(self, items: Sequence[Any]) -> Any:
        """Ack ids, ``(id, result)`` pairs or ``{"id", "result"?, "lease_token"?}``; answers
        ``{ok, acked, failed, results}``."""
        return self._call(cmds.ack_batch(items))

    def fail(
        self,
        job_id: str,
        error: str,
        *,
        lease_token: str | None = None,
        retry_delay_ms: int | None = None,
        dead: bool = False,
    ) -> Any:
        """Answers ``{"will_retry", "next_attempt_at", "state"}``."""
        return self._call(cmds.fail(job_id, error, lease_token, retry_delay_ms, dead))

    def nack(
        self,
        job_id: str,
        *,
        requeue: bool = True,
        reason: str | None = None,
        lease_token: str | None = None,
        consumer_id: str | None = None,
    ) -> Any:
        return self._call(cmds.nack(job_id, requeue, reason, lease_token, consumer_id))

    def release(
        self, target: str | Sequence[Any], *, lease_token: str | None = None, consumer_id: str | None = None
    ) -> Any:
        return self._call(cmds.release(target, lease_token, consumer_id))

    def cancel(self, job_id: str) -> Any:
        return self._call(cmds.cancel(job_id))

    def progress(
        self, job_id: str, progress: int, message: str | None = None, *, lease_token: str | None = None
    ) -> Any:
        return self._call(cmds.progress(job_id, progress, message, lease_token))

    def heartbeat(
        self, target: str | Sequence[Any], *, lease_token: str | None = None, consumer_id: str | None = None
    ) -> Any:
        """One id, or many (ids or ``{"id", "lease_token"}``) in one batched command."""
        return self._call(cmds.heartbeat(target, lease_token, consumer_id))

    def renew(
        self,
        job_id: str,
        lease_ms: int | None = None,
        *,
        lease_token: str | None = None,
        consumer_id: str | None = None,
    ) -> Any:
        return self._call(cmds.renew(job_id, lease_ms, lease_token, consumer_id))

    def get_job(self, job_id: str) -> Any:
        """The job dict, or None."""
        return self._call(cmds.get_job(job_id))

    def get_flow(self, flow_id: str) -> Any:
        return self._call(cmds.flow(flow_id))

    # queues
    def get_queue_stats(self, queue: str) -> Any:
        return self._call(cmds.stats(queue))

    def list_queues(self) -> Any:
        return self._call(cmds.list_queues())

    def get_dlq_jobs(self, queue: str, limit: int = 50) -> Any:
        return self._call(cmds.dlq(queue, limit))

    def pause_queue(self, queue: str) -> Any:
        return self._call(cmds.queue_pause(queue))

    def resume_queue(self, queue: str) -> Any:
        return self._call(cmds.queue_resume(queue))

    # schedules
    def create_schedule(self, schedule: Mapping[str, Any] | None = None, **fields: Any) -> Any:
        return self._call(cmds.schedule_create({**(schedule or {}), **fields}))

    def list_schedules(self) -> Any:
        return self._call(cmds.schedule_list())

    def get_schedule(self, name: str) -> Any:
        """The schedule dict, or None (the server answers ``NOT_FOUND``)."""
        return self._call(cmds.schedule_get(name))

    def delete_schedule(self, name: str) -> Any:
        return self._call(cmds.schedule_simple("schedule_delete", name))

    def pause_schedule(self, name: str) -> Any:
        return self._call(cmds.schedule_simple("schedule_pause", name))

    def resume_schedule(self, name: str) -> Any:
        return self._call(cmds.schedule_simple("schedule_resume", name))

    def health(self) -> Any:
        return self._call(cmds.health())


def _finish(call: cmds.Call, answer: dict[str, Any]) -> Any:
    """Raise the answer's error (None for codes listed as "missing") or extract the result."""
    try:
        raise_for_body(answer)
    except RustQueueError as exc:
        if exc.code in call.missing:
            return None
        raise
    return call.extract(answer)


class _Connection:
    __slots__ = ("pending", "reader", "task", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.task: asyncio.Task[None] | None = None


class AsyncTcpClient(_TcpApi):
    """Pipelining asyncio TCP client. Every command method is a coroutine function."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        *,
        auto_reconnect: bool = True,
        max_reconnect_attempts: int = 10,
        reconnect_delay: float = 0.1,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.auto_reconnect = auto_reconnect
        self.max_reconnect_attempts = max_reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self.connect_timeout = connect_timeout
        self._conn: _Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self._ever_connected = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AsyncTcpClient:
        host, port, token = parse_tcp_url(url)
        return cls(host, port, kwargs.pop("token", token), **kwargs)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def connect(self) -> AsyncTcpClient:
        self._closed = False
        await self._ensure()
        return self

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.writer.wait_closed(), 2.0)
            if conn.task is not None:
                conn.task.cancel()
                with contextlib.suppress(BaseException):
                    await conn.task
            _fail_pending(conn, RustQueueConnectionError("client closed"))

    async def __aenter__(self) -> AsyncTcpClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ requests
    async def request(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Send one command; return its raw answer (``ok: false`` answers are not raised)."""
        conn = await self._ensure()
        answer: dict[str, Any] = await self._send(conn, [command])[0]
        return answer

    async def pipeline(self, commands: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Send many commands in one write; return their raw answers in order."""
        if not commands:
            return []
        conn = await self._ensure()
        futures = self._send(conn, commands)
        await self._maybe_drain(conn)
        return list(await asyncio.gather(*futures))

    async def _call(self, call: cmds.Call) -> Any:
        return _finish(call, await self.request(call.command))

    def _send(self, conn: _Connection, commands: Sequence[Mapping[str, Any]]) -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        data = b"".join(_ENCODER.encode(c) + b"\n" for c in commands)
        conn.pending.extend(futures)
        conn.writer.write(data)
        return futures

    @staticmethod
    async def _maybe_drain(conn: _Connection) -> None:
        transport = conn.writer.transport
        if transport.get_write_buffer_size() > _DRAIN_ABOVE:
            try:
                await conn.writer.drain()
            except (ConnectionError, OSError) as exc:
                raise RustQueueConnectionError(f"connection lost: {exc}") from exc

    # ------------------------------------------------------------------ connection
    async def _ensure(self) -> _Connection:
        conn = self._conn
        if conn is not None:
            return conn
        if self._closed and self._ever_connected:
            raise RustQueueConnectionError("client closed")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is not None:
                return self._conn
            attempts = 1 + (self.max_reconnect_attempts if self.auto_reconnect else 0)
            last: Exception | None = None
            for attempt in range(attempts):
                try:
                    conn = await self._open()
                except RustQueueError:
                    raise
                except (OSError, TimeoutError, RustQueueConnectionError) as exc:
                    last = exc
                    if attempt + 1 < attempts:
                        await asyncio.sleep(min(self.reconnect_delay * 2**attempt, 5.0))
                    continue
                self._conn = conn
                self._ever_connected = True
                return conn
            raise RustQueueConnectionError(f"cannot connect to {self.host}:{self.port}: {last}") from last

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=MAX_LINE), self.connect_timeout
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(reader, writer)
        conn.task = asyncio.get_running_loop().create_task(self._read_loop(conn))
        if self.token:
            answer = await self._send(conn, [{"cmd": "auth", "token": self.token}])[0]
            if answer.get("ok") is not True:
                writer.close()
                raise_for_body(answer)
        return conn

    async def _read_loop(self, conn: _Connection) -> None:
        error: Exception = RustQueueConnectionError(f"connection to {self.host}:{self.port} closed by server")
        try:
            while True:
                line = await conn.reader.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    answer = _DECODER.decode(line)
                except msgspec.DecodeError:
                    answer = {
                        "ok": False,
                        "error": {"code": "PARSE_ERROR", "message": f"Invalid JSON response: {line[:200]!r}"},
                    }
                if conn.pending:
                    future = conn.pending.popleft()
                    if not future.done():
                        future.set_result(answer)
        except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            error = RustQueueConnectionError(f"connection to {self.host}:{self.port} lost: {exc}")
        finally:
            if self._conn is conn:
                self._conn = None
            conn.writer.close()
            _fail_pending(conn, error)


def _fail_pending(conn: _Connection, error: Exception) -> None:
    while conn.pending:
        future = conn.pending.popleft()
        if not future.done():
            future.set_exception(error)


class TcpClient(_TcpApi):
    """Blocking TCP client. Thread-safe (one request at a time per client)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        *,
        timeout: float | None = 30.0,
        auto_reconnect: bool = True,
        max_reconnect_attempts: int = 10,
        reconnect_delay: float = 0.1,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.timeout = timeout
        self.auto_reconnect = auto_reconnect
        self.max_reconnect_attempts = max_reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._lock = threading.RLock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> TcpClient:
        host, port, token = parse_tcp_url(url)
        return cls(host, port, kwargs.pop("token", token), **kwargs)

    def connect(self) -> TcpClient:
        with self._lock:
            self._ensure()
        return self

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> TcpClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, command: Mapping[str, Any]) -> dict[str, Any]:
        return self.pipeline([command])[0]

    def pipeline(self, commands: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Send many commands in one write and read their answers in order."""
        if not commands:
            return []
        data = b"".join(_ENCODER.encode(c) + b"\n" for c in commands)
        with self._lock:
            sock = self._ensure()
            try:
                sock.sendall(data)
                return [self._read_answer() for _ in commands]
            except (OSError, ValueError) as exc:
                self._drop()
                raise RustQueueConnectionError(f"connection to {self.host}:{self.port} lost: {exc}") from exc

    def _call(self, call: cmds.Call) -> Any:
        return _finish(call, self.request(call.command))

    def _read_answer(self) -> dict[str, Any]:
        while True:
            line = self._file.readline(MAX_LINE)
            if not line:
                raise ConnectionResetError("connection closed by server")
            if line.strip():
                return _DECODER.decode(line)  # type: ignore[no-any-return]

    def _ensure(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        attempts = 1 + (self.max_reconnect_attempts if self.auto_reconnect else 0)
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as exc:
                last = exc
                if attempt + 1 < attempts:
                    time.sleep(min(self.reconnect_delay * 2**attempt, 5.0))
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._file = sock, sock.makefile("rb")
            if self.token:
                try:
                    sock.sendall(_ENCODER.encode({"cmd": "auth", "token": self.token}) + b"\n")
                    answer = self._read_answer()
                except OSError as exc:
                    self._drop()
                    raise RustQueueConnectionError(f"authentication failed: {exc}") from exc
                if answer.get("ok") is not True:
                    self._drop()
                    raise_for_body(answer)
            return sock
        raise RustQueueConnectionError(f"cannot connect to {self.host}:{self.port}: {last}") from last

    def _drop(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._file = None
