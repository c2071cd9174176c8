"""The webhook routes of PROTOCOL §3.5 through the http plugin's app, and delivery from a real engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from rustqueue_http.app import create_app
from rustqueue_webhooks import verify_signature
from rustqueue_webhooks.config import WebhooksConfig
from rustqueue_webhooks.plugin import WebhooksPlugin
from rustqueue_webhooks.service import service_for

from rustqueue_core.builtin.memory import MemoryStorage
from rustqueue_core.engine import RustQueue
from rustqueue_core.plugins import PluginHost


def _files(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


class Server:
    def __init__(self, engine: RustQueue, client: Any) -> None:
        self.engine = engine
        self.client = client


@pytest_asyncio.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await serve(enabled=True, **config)`` → a started engine with the webhooks lifespan entered and
    an HTTP test client on its app; everything is closed at teardown."""
    import contextlib

    stack = contextlib.AsyncExitStack()

    async def start(**config: Any) -> Server:
        settings = {
            "enabled": True,
            "retry_base_delay_ms": 20,
            "store_path": str(tmp_path / f"{uuid.uuid4()}.db"),
        }
        settings.update(config)
        plugin = WebhooksPlugin(WebhooksConfig(**settings))
        host = PluginHost.embedded(["http"])
        host.register(plugin, "webhooks")
        engine = RustQueue(MemoryStorage(), host=host)
        await engine.start()
        stack.push_async_callback(engine.close)
        await stack.enter_async_context(plugin.run(engine))
        client = await stack.enter_async_context(AsyncTestClient(create_app(engine)))
        return Server(engine, client)

    async with stack:
        yield start


async def test_create_list_get_delete(serve: Any) -> None:
    server = await serve()
    client = server.client
    resp = await client.post(
        "/api/v1/webhooks",
        json={"url": "https://example.com/hook", "events": ["job_completed", "job.failed"], "secret": "s"},
    )
    assert resp.status_code == 201
    body = resp.json()
    hook = body["webhook"]
    assert body["ok"] is True
    assert set(hook) == {"id", "url", "events", "queues", "active", "created_at"}
    assert hook["events"] == ["job_completed", "job_failed"]
    assert hook["queues"] == [] and hook["active"] is True
    assert uuid.UUID(hook["id"]).version == 7
    assert hook["created_at"].endswith("Z")

    listed = (await client.get("/api/v1/webhooks")).json()
    assert listed == {"ok": True, "webhooks": [hook]}
    assert (await client.get(f"/api/v1/webhooks/{hook['id']}")).json() == {"ok": True, "webhook": hook}
    deleted = await client.delete(f"/api/v1/webhooks/{hook['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {"ok": True})
    for method in (client.get, client.delete):
        missing = await method(f"/api/v1/webhooks/{hook['id']}")
        assert missing.status_code == 404
        assert missing.json() == {
            "ok": False,
            "error": {"code": "WEBHOOK_NOT_FOUND", "message": f"Webhook '{hook['id']}' not found"},
        }


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"url": ""}, 400, "url is required"),
        ({"events": ["job_completed"]}, 400, "url is required"),
        ({"url": "ftp://example.com/x"}, 400, "http:// or https://"),
        ({"url": "not a url"}, 400, "http:// or https://"),
        ({"url": "https://example.com", "secret": ""}, 400, "secret must not be empty"),
        (
            {"url": "https://example.com", "events": ["job_exploded"]},
            422,
            "unknown event type 'job_exploded'",
        ),
        ({"url": "https://example.com", "events": "job_completed"}, 422, "Validation error"),
    ],
)
async def test_validation_errors_use_the_envelope(serve: Any, payload: Any, status: int, fragment: str) -> None:
    server = await serve()
    resp = await server.client.post("/api/v1/webhooks", json=payload)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert resp.json()["ok"] is False
    assert error["code"] == "VALIDATION_ERROR"
    assert fragment in error["message"]
    assert (await server.client.get("/api/v1/webhooks")).json()["webhooks"] == []


async def test_malformed_json_is_a_400_envelope(serve: Any) -> None:
    server = await serve()
    resp = await server.client.post(
        "/api/v1/webhooks", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_disabled_routes_answer_503(serve: Any, tmp_path: Path) -> None:
    server = await serve(enabled=False)
    expected = {"ok": False, "error": {"code": "WEBHOOKS_DISABLED", "message": "Webhooks are not enabled"}}
    for resp in (
        await server.client.post("/api/v1/webhooks", json={"url": "https://example.com"}),
        await server.client.get("/api/v1/webhooks"),
        await server.client.get("/api/v1/webhooks/x"),
        await server.client.delete("/api/v1/webhooks/x"),
    ):
        assert (resp.status_code, resp.json()) == (503, expected)
    assert service_for(server.engine) is not None
    assert not server.engine.host.has_jobs_changed  # a disabled plugin costs the engine nothing
    assert not _files(tmp_path, "*.db")


async def test_engine_events_are_delivered_signed(serve: Any, receiver: Any, until: Any) -> None:
    server = await serve()
    resp = await server.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "events": ["job.pushed", "job_completed", "job_failed"], "secret": "k"},
    )
    hook_id = resp.json()["webhook"]["id"]
    rq = server.engine
    job_id = await rq.push("emails", "send", {"to": "a@b.c"})
    (job,) = await rq.claim("emails")
    await rq.ack(job.id, {"sent": True})
    doomed = await rq.push("emails", "send", max_attempts=1)
    (job2,) = await rq.claim("emails")
    await rq.fail(job2.id, "boom")
    reqs = await receiver.wait_for(4)
    seen = [(r.json()["event"], r.json()["data"]["job_id"]) for r in reqs]
    assert sorted(seen) == sorted(
        [("job.pushed", job_id), ("job.completed", job_id), ("job.pushed", doomed), ("job.failed", doomed)]
    )
    for r in reqs:
        assert r.headers["x-rustqueue-webhook-id"] == hook_id
        assert r.headers["x-rustqueue-event"] == r.json()["event"]
        assert r.json()["data"]["queue"] == "emails"
        assert verify_signature("k", r.body, r.headers["x-rustqueue-signature"])
    service = service_for(rq)
    assert service is not None
    await until(lambda: service.delivered_total == 4)


async def test_failed_deliveries_are_inspectable(serve: Any, receiver: Any, until: Any) -> None:
    receiver.default = 500
    server = await serve(max_retries=1, retry_base_delay_ms=5)
    hook_id = (await server.client.post("/api/v1/webhooks", json={"url": receiver.url})).json()["webhook"]["id"]
    await server.engine.push("emails", "send")
    service = service_for(server.engine)
    assert service is not None
    await until(lambda: service.failed_total == 1)
    resp = await server.client.get(f"/api/v1/webhooks/{hook_id}/deliveries", params={"status": "failed"})
    (delivery,) = resp.json()["deliveries"]
    assert delivery["event"] == "job.pushed"
    assert delivery["attempts"] == 2
    assert delivery["last_status"] == 500
    bad = await server.client.get(f"/api/v1/webhooks/{hook_id}/deliveries", params={"status": "nope"})
    assert bad.status_code == 400


async def test_two_engines_are_independent(serve: Any, receivers: Any) -> None:
    first, second = await serve(), await serve()
    r1, r2 = receivers(), receivers()
    await first.client.post("/api/v1/webhooks", json={"url": r1.url})
    await second.client.post("/api/v1/webhooks", json={"url": r2.url})
    assert len((await first.client.get("/api/v1/webhooks")).json()["webhooks"]) == 1
    await first.engine.push("one", "job")
    await second.engine.push("two", "job")
    (a,) = await r1.wait_for(1)
    (b,) = await r2.wait_for(1)
    assert a.json()["data"]["queue"] == "one"
    assert b.json()["data"]["queue"] == "two"


async def test_routes_answer_the_startup_gate_until_the_service_runs(tmp_path: Path) -> None:
    """Before recovery ends the webhook service has not started: the routes say "starting" (NOT_READY,
    retry later), not "webhooks are not enabled"."""
    plugin = WebhooksPlugin(WebhooksConfig(enabled=True, store_path=str(tmp_path / "hooks.db")))
    host = PluginHost.embedded(["http"])
    host.register(plugin, "webhooks")
    engine = RustQueue(MemoryStorage(), host=host)
    assert engine.state == "starting"
    try:
        async with AsyncTestClient(create_app(engine)) as client:
            for method, path in (("GET", "/api/v1/webhooks"), ("POST", "/api/v1/webhooks")):
                early = await client.request(method, path, json={"url": "http://127.0.0.1:9/hook"})
                assert early.status_code == 503 and early.headers["retry-after"] == "1"
                assert early.json()["error"]["code"] == "NOT_READY"
            await engine.start()
            async with plugin.run(engine):
                created = await client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
                assert created.status_code == 201
                assert len((await client.get("/api/v1/webhooks")).json()["webhooks"]) == 1
    finally:
        await engine.close()


async def test_disabled_webhooks_say_so_once_started(serve: Callable[..., Any]) -> None:
    server = await serve(enabled=False)
    answer = await server.client.get("/api/v1/webhooks")
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "WEBHOOKS_DISABLED"
