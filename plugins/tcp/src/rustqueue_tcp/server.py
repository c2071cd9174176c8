"""The asyncio TCP server: framing, pipelining, binary frames, flow control and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from typing import TYPE_CHECKING, Any, cast

from rustqueue_core.errors import RustQueueError
from rustqueue_core.models import NewJob
from rustqueue_tcp import binary, wire
from rustqueue_tcp.commands import CommandProcessor, Session, open_session

if TYPE_CHECKING:
    from rustqueue_core.engine import RustQueue

log = logging.getLogger("rustqueue.tcp")

#: Longest accepted JSON line: the 1 MiB data limit, 64 KiB of metadata and room for the envelope.
DEFAULT_MAX_LINE = 1_048_576 + 65_536 + 16_384
#: Lines handled per engine round; bounds latency and memory of one burst.
MAX_LINES_PER_ROUND = 4096
#: While a round runs, stop reading once this much input is buffered.
READ_PAUSE_BYTES = 8 * 1_048_576
_NEWLINE = 0x0A


class TcpServer:
    """Serves the TCP protocol for one engine. Use as an async context manager."""

    def __init__(
        self,
        engine: RustQueue,
        host: str = "0.0.0.0",
        port: int = 6789,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE,
        shutdown_grace: float = 10.0,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.max_line_bytes = max_line_bytes
        self.shutdown_grace = shutdown_grace
        self.processor = CommandProcessor(engine)
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    @property
    def bound_port(self) -> int:
        """The listening port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> TcpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), self.host, self.port, reuse_address=True, backlog=1024
        )
        log.info("TCP listening on %s:%s", self.host, self.bound_port)
        return self

    async def stop(self) -> None:
        """Stop accepting; let each connection finish its current round, then close it."""
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        waiters = [conn.closed for conn in self.connections]
        if waiters:
            _, still_open = await asyncio.wait(waiters, timeout=self.shutdown_grace)
            for conn in list(self.connections):
                if not conn.closed.done():
                    conn.abort()
            if still_open:
                await asyncio.wait(still_open, timeout=1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
        self._server = None

    async def __aenter__(self) -> TcpServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Connection(asyncio.Protocol):
    """One client connection. Input is buffered; a single task works through complete frames."""

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.engine = server.engine
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.session: Session = Session(None)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._frames = binary.FrameReader()
        self._lost = False
        self._stopping = False
        self._reading_paused = False
        self._eof = False
        self._writable = asyncio.Event()
        self._writable.set()

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports implement the interface without subclassing it.
        self.transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peername = transport.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else None
        self.server.connections.add(self)
        self.session = open_session(self.engine, peer)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work())
        elif len(self.buffer) > READ_PAUSE_BYTES and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        # Answer what is already buffered, then close (True keeps the write side open meanwhile).
        self._eof = True
        return self._task is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._writable.set()
        self.server.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ------------------------------------------------------------------ control
    def shutdown(self) -> None:
        self._stopping = True
        if self._task is None:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._lost and not self.transport.is_closing():
            self.transport.write(data)

    async def _drain(self) -> None:
        if not self._writable.is_set() and not self._lost:
            await self._writable.wait()

    # ------------------------------------------------------------------ the work loop
    async def _work(self) -> None:
        try:
            while not self._lost and not self._stopping:
                if not await self._round():
                    break
        except Exception:
            log.exception("TCP connection failed")
            self._close()
        finally:
            self._task = None
            if self._reading_paused and self.transport is not None and not self._lost:
                self._reading_paused = False
                self.transport.resume_reading()
            if self._stopping or (self.transport is not None and self.transport.is_closing()):
                self._close()
            elif self.buffer and self._has_complete_frame_hint():
                # Input arrived while finishing; keep going.
                self._task = asyncio.get_running_loop().create_task(self._work())
            elif self._eof:
                self._close()

    def _has_complete_frame_hint(self) -> bool:
        first = self.buffer[0]
        return first in binary.FRAME_KINDS or self.buffer.find(b"\n") >= 0

    async def _round(self) -> bool:
        """Handle what is complete at the head of the buffer. False when more input is needed."""
        buf = self.buffer
        if not buf:
            return False
        if buf[0] in binary.FRAME_KINDS:
            return await self._binary_round()
        lines: list[bytes] = []
        pos = 0
        size = len(buf)
        too_long = False
        while pos < size and len(lines) < MAX_LINES_PER_ROUND:
            if buf[pos] in binary.FRAME_KINDS:
                break
            end = buf.find(b"\n", pos)
            if end < 0:
                too_long = size - pos > self.server.max_line_bytes
                break
            if end - pos > self.server.max_line_bytes:
                too_long = True
                break
            lines.append(bytes(buf[pos:end]))
            pos = end + 1
        del buf[:pos]
        if lines:
            responses = await self.server.processor.run_lines(self.session, lines)
            self._write(b"".join(responses))
            await self._drain()
        if too_long:
            limit = self.server.max_line_bytes
            self._write(wire.error_line("VALIDATION_ERROR", f"Line exceeds maximum length of {limit} bytes"))
            self.buffer.clear()
            self._close()
            return False
        return bool(lines)

    async def _binary_round(self) -> bool:
        if not self.session.authenticated:
            self._write(binary.encode_error("Authentication required before binary commands"))
            self.buffer.clear()
            self._close()
            return False
        try:
            parsed = self._frames.parse(self.buffer)
        except binary.FrameError as exc:
            self._write(binary.encode_error(str(exc)))
            self.buffer.clear()
            self._close()
            return False
        if parsed is None:
            return False
        frame, consumed = parsed
        del self.buffer[:consumed]
        response = await self._run_frame(frame)
        self._write(binary.with_channel(frame.channel, response))
        await self._drain()
        return True

    async def _run_frame(self, frame: binary.Frame) -> bytes:
        if frame.decode_error is not None:
            return binary.encode_error(frame.decode_error)
        try:
            if frame.kind == binary.PUSH:
                return await self._binary_push(frame)
            if frame.kind == binary.PULL:
                return await self._binary_pull(frame)
            return await self._binary_ack(frame)
        except RustQueueError as exc:
            return binary.encode_error(exc.message)
        except Exception as exc:
            log.exception("TCP binary frame failed")
            return binary.encode_error(f"Internal error: {exc}")

    async def _binary_push(self, frame: binary.Frame) -> bytes:
        jobs = [
            NewJob(queue=frame.queue, name=f"binary-job-{i}", data=_payload_value(payload))
            for i, payload in enumerate(frame.payloads)
        ]
        ids = await self.engine.push_batch(frame.queue, jobs, principal=self.session.principal)
        return binary.encode_push_ok([uuid.UUID(job_id).bytes for job_id in ids])

    async def _binary_pull(self, frame: binary.Frame) -> bytes:
        jobs = await self.engine.claim(frame.queue, frame.count) if frame.count else []
        return binary.encode_pull_ok([(uuid.UUID(j.id).bytes, wire.encode_json(j.data)) for j in jobs])

    async def _binary_ack(self, frame: binary.Frame) -> bytes:
        if not frame.ids:
            return binary.encode_ack_ok(0, 0)
        result = await self.engine.ack_batch([str(uuid.UUID(bytes=raw)) for raw in frame.ids])
        return binary.encode_ack_ok(result.ok, result.failed)


def _payload_value(payload: bytes) -> Any:
    """A payload that parses as JSON is stored as that value; anything else as a JSON string."""
    try:
        return wire.decode(payload)
    except Exception:
        return payload.decode("utf-8", errors="replace")
