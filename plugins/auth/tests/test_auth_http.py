"""Auth through the plugin host on the HTTP API: protected and public routes, messages, lockout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import rustqueue_auth.plugin as auth_plugin
import rustqueue_http.plugin as http_plugin
from litestar.testing import AsyncTestClient
from rustqueue_http.app import create_app

from rustqueue_core.builtin.memory import create_memory_storage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost

JOB = {"name": "task", "data": {}}


async def client_for(config: dict[str, Any]) -> tuple[RustQueue, AsyncTestClient[Any]]:
    host = PluginHost.embedded([http_plugin, auth_plugin])
    host.configure(Config(data=config))
    engine = await RustQueue(create_memory_storage("memory://", {}), host=host).start()
    return engine, AsyncTestClient(create_app(engine))


@pytest.fixture
async def secured() -> AsyncIterator[AsyncTestClient[Any]]:
    engine, client = await client_for({"auth": {"enabled": True, "tokens": ["secret-token", "other"]}})
    async with client:
        yield client
    await engine.close()


async def test_auth_disabled_allows_everything():
    engine, client = await client_for({"auth": {"enabled": False, "tokens": ["x"]}})
    async with client:
        assert (await client.get("/api/v1/health")).status_code == 200
        assert (await client.post("/api/v1/queues/test/jobs", json=JOB)).status_code == 201
    await engine.close()


async def test_401_messages(secured):
    cases = [
        ({}, "Missing Authorization header"),
        ({"Authorization": "Token secret-token"}, "Authorization header must use Bearer scheme"),
        ({"Authorization": "Bearer "}, "Missing bearer token"),
        ({"Authorization": "Bearer wrong"}, "Invalid bearer token"),
    ]
    for headers, message in cases:
        response = await secured.post("/api/v1/queues/test/jobs", json=JOB, headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "ok": False,
            "error": {"code": "UNAUTHORIZED", "message": message, "details": None},
        }


async def test_valid_token_reaches_every_protected_route(secured):
    headers = {"Authorization": "Bearer secret-token"}
    pushed = await secured.post("/api/v1/queues/test/jobs", json=JOB, headers=headers)
    assert pushed.status_code == 201
    job_id = pushed.json()["id"]
    for path in (
        "/api/v1/queues",
        "/api/v1/queues/test/stats",
        f"/api/v1/jobs/{job_id}",
        "/api/v1/schedules",
        "/api/v1/flows/f",
        "/api/v1/jobs",
    ):
        assert (await secured.get(path)).status_code == 401, path
        assert (await secured.get(path, headers={"Authorization": "Bearer other"})).status_code == 200, path


async def test_public_routes_stay_open(secured):
    for path in ("/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs", "/"):
        assert (await secured.get(path)).status_code == 200, path
    assert (await secured.get("/api/v1/metrics/prometheus")).status_code == 503
    preflight = await secured.options(
        "/api/v1/queues/test/jobs",
        headers={"Origin": "https://a.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code in (200, 204)


async def test_lockout_answers_429_on_the_sixth_request(secured):
    for attempt in range(5):
        response = await secured.get("/api/v1/queues", headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401, attempt
    locked = await secured.get("/api/v1/queues", headers={"Authorization": "Bearer secret-token"})
    assert locked.status_code == 429
    assert locked.json() == {
        "ok": False,
        "error": {
            "code": "RATE_LIMITED",
            "message": "Too many failed authentication attempts. Try again later.",
            "details": None,
        },
    }
    # Public routes are not subject to authentication, so the lock does not reach them.
    assert (await secured.get("/api/v1/health")).status_code == 200
