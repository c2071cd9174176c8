"""Health, OpenAPI, docs, landing page, CORS, framework errors as JSON, optional-plugin fallbacks."""

from __future__ import annotations

import rustqueue_websocket.plugin as websocket_plugin
from litestar.testing import AsyncTestClient
from rustqueue_http.app import create_app


def assert_envelope(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["ok"] is False and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_health(client, engine):
    response = await client.get("/api/v1/health", headers={"Content-Type": "application/json"})
    body = response.json()
    assert response.status_code == 200
    assert (body["ok"], body["status"], body["version"]) == (True, "healthy", engine.version)
    assert isinstance(body["uptime_seconds"], int) and body["uptime_seconds"] >= 0


async def test_openapi_document_from_the_real_handlers(engine):
    # Re-register the websocket plugin so its /api/v1/events routes are part of the document.
    engine.host.register(websocket_plugin)
    async with AsyncTestClient(create_app(engine)) as client:
        response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and "json" in response.headers["content-type"]
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "RustQueue API"
    assert document["info"]["license"]["name"] == "MIT OR Apache-2.0"
    paths = document["paths"]
    for path in (
        "/api/v1/queues/{queue}/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/queues",
        "/api/v1/schedules",
        "/api/v1/health",
        "/api/v1/events",
        "/api/v1/metrics/prometheus",
        "/api/v1/flows/{flow_id}",
        "/api/v1/webhooks",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/queues/{queue}/jobs"]) >= {"get", "post"}
    schemas = document["components"]["schemas"]
    for name in (
        "Job",
        "JobState",
        "Schedule",
        "QueueCounts",
        "ErrorResponse",
        "JobOptions",
        "BackoffStrategy",
    ):
        assert name in schemas, name
    assert set(schemas["JobState"]["enum"]) >= {"waiting", "active", "dlq", "blocked"}
    # Request bodies come from the structs the handlers decode with.
    push_body = paths["/api/v1/queues/{queue}/jobs"]["post"]["requestBody"]
    assert push_body["required"] is True
    assert push_body["content"]["application/json"]["schema"]["oneOf"][0] == {"$ref": "#/components/schemas/PushItem"}
    assert set(schemas["PushItem"]["required"]) == {"name", "data"}
    assert paths["/api/v1/jobs/{id}/ack"]["post"]["requestBody"]["required"] is False
    assert "requestBody" in paths["/api/v1/schedules"]["post"]


async def test_docs_page_and_landing_page(client):
    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "scalar" in docs.text.lower()
    landing = await client.get("/")
    assert landing.status_code == 200 and landing.headers["content-type"].startswith("text/html")
    assert "Background Jobs" in landing.text and "Without Infrastructure" in landing.text


async def test_cors_allows_everything(client):
    preflight = await client.options(
        "/api/v1/queues/tasks/jobs",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Authorization",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-methods" in preflight.headers
    assert "access-control-allow-headers" in preflight.headers
    simple = await client.get("/api/v1/health", headers={"Origin": "https://example.com"})
    assert simple.headers["access-control-allow-origin"] == "*"


async def test_unknown_path_and_wrong_method_answer_json(client):
    assert_envelope(await client.get("/api/v1/nope"), 404, "NOT_FOUND")
    assert_envelope(await client.get("/nothing/here", headers={"Content-Type": "application/json"}), 404, "NOT_FOUND")
    assert_envelope(await client.delete("/api/v1/health"), 405, "METHOD_NOT_ALLOWED")
    assert_envelope(await client.put("/api/v1/queues/tasks/jobs", json={}), 405, "METHOD_NOT_ALLOWED")


async def test_oversized_body_is_413_json(client):
    payload = b'{"name":"big","data":"' + b"x" * (1_300_000) + b'"}'
    response = await client.post(
        "/api/v1/queues/tasks/jobs", content=payload, headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


async def test_job_data_over_one_mebibyte_is_a_validation_error(client):
    payload = b'{"name":"big","data":"' + b"x" * 1_048_600 + b'"}'
    response = await client.post("/api/v1/queues/tasks/jobs", content=payload)
    assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "exceeds maximum of 1048576 bytes" in response.json()["error"]["message"]


async def test_webhooks_without_the_plugin_answer_503_like_the_original(client):
    for method, path in (
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/0190aaaa-0000-7000-8000-000000000000"),
        ("DELETE", "/api/v1/webhooks/0190aaaa-0000-7000-8000-000000000000"),
    ):
        response = await client.request(method, path, json={"url": "http://x"} if method == "POST" else None)
        assert response.status_code == 503, (method, path)
        assert response.json() == {
            "ok": False,
            "error": {"code": "WEBHOOKS_DISABLED", "message": "Webhooks are not enabled"},
        }


async def test_prometheus_path_without_metrics_plugin_is_503_text(client):
    response = await client.get("/api/v1/metrics/prometheus")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Metrics not available"


async def test_engine_error_statuses(client, api):
    """Every engine error answers its own status and code."""
    job_id = await api.push()
    await api.pull()
    # INVALID_STATE on a second pull-free ack after completion.
    assert (await client.post(f"/api/v1/jobs/{job_id}/ack")).status_code == 200
    assert_envelope(await client.post(f"/api/v1/jobs/{job_id}/ack"), 409, "INVALID_STATE")
    assert_envelope(
        await client.post(f"/api/v1/jobs/{job_id}/fail", json={"error": "x" * 10_241}),
        400,
        "VALIDATION_ERROR",
    )


async def test_rustqueue_plugin_mounts_into_an_existing_app(engine):
    from litestar import Litestar, get
    from rustqueue_http import RustQueuePlugin

    @get("/mine")
    async def mine() -> dict[str, str]:
        return {"hello": "world"}

    app = Litestar(route_handlers=[mine], plugins=[RustQueuePlugin(engine)])
    async with AsyncTestClient(app) as client:
        assert (await client.get("/mine")).json() == {"hello": "world"}
        pushed = await client.post("/api/v1/queues/mounted/jobs", json={"name": "t", "data": {}})
        assert pushed.status_code == 201
        missing = await client.get(f"/api/v1/jobs/{'0' * 8}-0000-7000-8000-{'0' * 12}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "JOB_NOT_FOUND"
    assert app.state["rustqueue_engine"] is engine


async def test_unexpected_errors_answer_500_envelope(engine, client, monkeypatch):
    async def broken(queue: str) -> None:
        raise RuntimeError("storage exploded")

    monkeypatch.setattr(engine, "counts", broken)
    response = await client.get("/api/v1/queues/tasks/stats")
    assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "storage exploded" in response.json()["error"]["message"]
