"""Fixtures of the http plugin's tests: a real engine on memory storage and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import rustqueue_http.plugin as http_plugin
from litestar.testing import AsyncTestClient
from rustqueue_http.app import create_app

from rustqueue_core.builtin.memory import create_memory_storage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost
from rustqueue_core.settings import EngineSettings


async def make_engine(plugins: Sequence[Any] = (), config: dict[str, Any] | None = None) -> RustQueue:
    host = PluginHost.embedded([http_plugin, *plugins])
    if config is not None:
        host.configure(Config(data=config))
    engine = RustQueue(create_memory_storage("memory://", {}), host=host, settings=EngineSettings())
    await engine.start()
    return engine


@pytest.fixture
async def engine() -> AsyncIterator[RustQueue]:
    rq = await make_engine()
    try:
        yield rq
    finally:
        await rq.close()


@pytest.fixture
async def client(engine: RustQueue) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(engine)) as test_client:
        yield test_client


class Api:
    """Small helpers over the test client for the steps most tests repeat."""

    def __init__(self, client: AsyncTestClient[Any]) -> None:
        self.client = client

    async def push(self, queue: str = "tasks", **body: Any) -> str:
        payload = {"name": "task", "data": {}, **body}
        response = await self.client.post(f"/api/v1/queues/{queue}/jobs", json=payload)
        assert response.status_code == 201, response.text
        job_id: str = response.json()["id"]
        return job_id

    async def pull(self, queue: str = "tasks") -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/queues/{queue}/jobs")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()["job"]
        assert job is not None
        return job

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()["job"]
        return job


@pytest.fixture
def api(client: AsyncTestClient[Any]) -> Api:
    return Api(client)
