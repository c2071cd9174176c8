"""A real ``rustqueue serve`` in a subprocess, for black-box tests of transports and plugins.

>>> with ServerProcess(["--plugins=http,tcp"], storage="memory://") as server:
...     httpx.get(f"{server.http_url}/api/v1/health")

Ports are free 127.0.0.1 ports picked at start; ``start()`` returns once the server printed its ready line
(the engine finished recovery and every transport listens), or raises with the server's output. Every wait
has a timeout. ``stop()`` sends SIGTERM (or the given signal) and returns the exit code.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

READY_PREFIX = "rustqueue ready:"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One ``python -m rustqueue_core serve`` subprocess bound to 127.0.0.1."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        storage: str = "memory://",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        http_port: int | None = None,
        tcp_port: int | None = None,
        keep_environment: bool = False,
    ) -> None:
        self.args = list(args)
        self.storage = storage
        self.cwd = Path(cwd) if cwd is not None else None
        self.http_port = http_port or free_port()
        self.tcp_port = tcp_port or free_port()
        base = (
            dict(os.environ)
            if keep_environment
            else {k: v for k, v in os.environ.items() if not k.startswith(("RUSTQUEUE_", "QRUSTY_"))}
        )
        self.env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def tcp_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.tcp_port)

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "rustqueue_core", "serve",
            "--storage", self.storage,
            "--host", "127.0.0.1",
            "--http-port", str(self.http_port),
            "--tcp-port", str(self.tcp_port),
            *self.args,
        ]  # fmt: skip

    def output(self) -> str:
        return "".join(self._lines)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)
            if line.startswith(READY_PREFIX):
                self._ready.set()

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="rustqueue-server-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._join_reader()
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"server not ready after {timeout} s:\n{self.output()}")
        return self

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it to exit; returns its exit code (kills it after ``timeout``)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._join_reader()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL: the crash case, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._join_reader()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
