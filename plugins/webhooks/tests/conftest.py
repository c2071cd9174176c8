"""Fixtures of the webhooks tests: a real HTTP receiver on 127.0.0.1 and a service factory."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from rustqueue_webhooks.config import WebhooksConfig
from rustqueue_webhooks.service import WebhookService

from rustqueue_core.models import JobEvent


class Received(msgspec.Struct):
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class Receiver:
    """A threaded HTTP server that records every POST and answers from a script.

    ``script`` items are HTTP status codes or ``"hang"`` (hold the request until the test ends);
    once the script runs out every request gets ``default``.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[int | str] = []
        self.default: int | str = 200
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                    )
                    action = receiver.script.pop(0) if receiver.script else receiver.default
                if action == "hang":
                    receiver.release.wait(30)
                    return
                self.send_response(int(action))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            await asyncio.sleep(0.01)
        return list(self.requests)


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    """``receivers()`` → a new receiver; all are closed at teardown."""
    made: list[Receiver] = []

    def make() -> Receiver:
        made.append(Receiver())
        return made[-1]

    try:
        yield make
    finally:
        for r in made:
            r.close()


@pytest.fixture
def receiver(receivers: Callable[[], Receiver]) -> Receiver:
    return receivers()


def event(kind: str, job_id: str = "0190b3a0-0000-7000-8000-000000000001", queue: str = "emails") -> JobEvent:
    return JobEvent(kind=kind, job_id=job_id, queue=queue, timestamp=datetime(2026, 1, 2, 3, 4, 5, 678901, UTC))


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


ServiceFactory = Callable[..., Any]


@pytest_asyncio.fixture
async def service_factory(tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """``await service_factory(**config)`` → a started service on ``tmp_path/webhooks.db``; fast
    retries by default. All are stopped at teardown."""
    started: list[WebhookService] = []

    async def make(**overrides: Any) -> WebhookService:
        settings: dict[str, Any] = {
            "enabled": True,
            "delivery_timeout_ms": 2_000,
            "retry_base_delay_ms": 20,
            "store_path": str(tmp_path / "webhooks.db"),
        }
        settings.update(overrides)
        config = WebhooksConfig(**settings).validate()
        service = WebhookService(config, config.store_path or "")
        await service.start()
        started.append(service)
        return service

    try:
        yield make
    finally:
        for service in reversed(started):
            await service.stop()


@pytest.fixture
def make_event() -> Callable[..., JobEvent]:
    return event


@pytest.fixture
def until() -> Callable[..., Any]:
    return wait_until
