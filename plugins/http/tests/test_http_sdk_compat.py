"""Black-box compatibility with the RustQueue 0.3 client SDKs and integration tests, over a real server.

Every request here is what one of the original's clients sends: the Python, Node and Go SDKs put
``Content-Type: application/json`` and ``Accept: application/json`` on *every* request, the Node and Go
clients POST ack/cancel/heartbeat/pause/resume with no body at all, and every client parses every
response body as JSON (Go and Node fail with ``PARSE_ERROR`` otherwise). The assertions read the
responses the way those clients and tests do: the keys, the status codes and the error codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from rustqueue_core.testing.server import ServerProcess

SDK_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
COUNT_KEYS = {"waiting", "active", "delayed", "completed", "failed", "dlq", "blocked"}
MISSING_ID = "00000000-0000-7000-8000-000000000000"
EVENT_KEYS = {"event", "job_id", "queue", "timestamp"}
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("sdk-compat")
    with ServerProcess(
        ["--plugins=http,tcp,websocket,metrics,dashboard"], storage=f"sqlite:///{workdir}/jobs.db", cwd=workdir
    ) as running:
        yield running


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, headers=SDK_HEADERS, timeout=TIMEOUT) as client:
        yield client


def sdk_json(response: httpx.Response) -> dict[str, Any]:
    """What the Go client does with every response: the body must be a JSON object."""
    body = json.loads(response.content)
    assert isinstance(body, dict), response.text
    return body


def push(api: httpx.Client, queue: str, **body: Any) -> str:
    response = api.post(f"/api/v1/queues/{queue}/jobs", json={"name": "task", "data": {}, **body})
    assert response.status_code == 201, response.text
    job_id: str = sdk_json(response)["id"]
    return job_id


def pull_one(api: httpx.Client, queue: str) -> dict[str, Any]:
    body = sdk_json(api.get(f"/api/v1/queues/{queue}/jobs"))
    assert body["ok"] is True and body["job"] is not None, body
    job: dict[str, Any] = body["job"]
    return job


# --------------------------------------------------------------------------- jobs


def test_push_with_flattened_options_and_batch(api: httpx.Client) -> None:
    # Python SDK push(): every option it knows, flattened next to name and data.
    options = {
        "priority": 5, "delay_ms": None, "max_attempts": 4, "backoff": "fixed", "backoff_delay_ms": 10,
        "ttl_ms": 60000, "timeout_ms": 30000, "unique_key": "sdk-compat-1", "tags": ["x"], "group_id": "g",
        "lifo": False, "remove_on_complete": False, "remove_on_fail": False, "custom_id": "c-1",
    }  # fmt: skip
    body = {
        "name": "send-email",
        "data": {"to": "a@example.com"},
        **{k: v for k, v in options.items() if v is not None},
    }
    response = api.post("/api/v1/queues/sdk-push/jobs", json=body)
    assert response.status_code == 201
    job_id = sdk_json(response)["id"]
    job = sdk_json(api.get(f"/api/v1/jobs/{job_id}"))["job"]
    for key, value in options.items():
        if value is not None:
            assert job[key] == value, key
    assert job["state"] == "waiting" and job["data"] == {"to": "a@example.com"}

    # Node/Go pushBatch: each entry's options flattened; the answer keeps input order.
    batch = [{"name": "a", "data": {"i": 1}}, {"name": "b", "data": None, "priority": 9}]
    response = api.post("/api/v1/queues/sdk-push/jobs", json=batch)
    assert response.status_code == 201
    ids = sdk_json(response)["ids"]
    assert len(ids) == 2
    assert sdk_json(api.get(f"/api/v1/jobs/{ids[1]}"))["job"]["priority"] == 9


def test_pull_answers_job_or_jobs_by_count(api: httpx.Client) -> None:
    queue = "sdk-pull"
    for _ in range(3):
        push(api, queue)
    # No count (what every SDK sends for count 1) and count=1: "job"; any other count: "jobs".
    assert set(sdk_json(api.get(f"/api/v1/queues/{queue}/jobs"))) == {"ok", "job"}
    assert set(sdk_json(api.get(f"/api/v1/queues/{queue}/jobs?count=1"))) == {"ok", "job"}
    assert sdk_json(api.get(f"/api/v1/queues/{queue}/jobs?count=0")) == {"ok": True, "jobs": []}
    many = sdk_json(api.get(f"/api/v1/queues/{queue}/jobs?count=5"))
    assert set(many) == {"ok", "jobs"} and len(many["jobs"]) == 1
    assert sdk_json(api.get(f"/api/v1/queues/{queue}/jobs")) == {"ok": True, "job": None}


def test_bodyless_posts_of_node_and_go_clients(api: httpx.Client) -> None:
    queue = "sdk-bodyless"
    # ack with no body but a JSON Content-Type (Node ack(id), Go Ack(ctx, id, nil)).
    job_id = push(api, queue)
    pull_one(api, queue)
    assert sdk_json(api.post(f"/api/v1/jobs/{job_id}/ack")) == {"ok": True}
    assert sdk_json(api.get(f"/api/v1/jobs/{job_id}"))["job"]["state"] == "completed"
    # Python sends {} and {"result": r}; reqwest tests send {"result": null}.
    for body in ({}, {"result": {"out": 1}}, {"result": None}):
        job_id = push(api, queue)
        pull_one(api, queue)
        assert sdk_json(api.post(f"/api/v1/jobs/{job_id}/ack", json=body)) == {"ok": True}
    assert sdk_json(api.get(f"/api/v1/jobs/{job_id}"))["job"]["result"] is None
    # heartbeat and cancel with no body.
    job_id = push(api, queue)
    pull_one(api, queue)
    assert sdk_json(api.post(f"/api/v1/jobs/{job_id}/heartbeat")) == {"ok": True}
    waiting_id = push(api, queue, delay_ms=60_000)
    assert sdk_json(api.post(f"/api/v1/jobs/{waiting_id}/cancel")) == {"ok": True}
    assert sdk_json(api.get(f"/api/v1/jobs/{waiting_id}"))["job"]["state"] == "cancelled"
    # Go PauseQueue/ResumeQueue with no body; a paused queue refuses pushes with 503.
    assert sdk_json(api.post(f"/api/v1/queues/{queue}/pause")) == {"ok": True}
    refused = api.post(f"/api/v1/queues/{queue}/jobs", json={"name": "task", "data": {}})
    assert refused.status_code == 503 and sdk_json(refused)["error"]["code"] == "QUEUE_PAUSED"
    assert sdk_json(api.post(f"/api/v1/queues/{queue}/resume")) == {"ok": True}


def test_fail_answers_retry_and_next_attempt_at(api: httpx.Client) -> None:
    queue = "sdk-fail"
    job_id = push(api, queue, max_attempts=3)
    pull_one(api, queue)
    retried = sdk_json(api.post(f"/api/v1/jobs/{job_id}/fail", json={"error": "timeout"}))
    assert retried["ok"] is True and retried["retry"] is True
    assert retried["next_attempt_at"].endswith("+00:00")
    assert "will_retry" not in retried

    job_id = push(api, queue, max_attempts=1)
    pull_one(api, queue)
    dead = sdk_json(api.post(f"/api/v1/jobs/{job_id}/fail", json={"error": "fatal crash"}))
    assert dead["ok"] is True and dead["retry"] is False and "next_attempt_at" not in dead
    dlq = sdk_json(api.get(f"/api/v1/queues/{queue}/dlq?limit=100"))["jobs"]
    assert [job["id"] for job in dlq] == [job_id] and dlq[0]["state"] == "dlq"
    assert sdk_json(api.get(f"/api/v1/queues/{queue}/dlq"))["jobs"][0]["id"] == job_id


def test_progress_and_get_job(api: httpx.Client) -> None:
    queue = "sdk-progress"
    job_id = push(api, queue)
    pull_one(api, queue)
    assert sdk_json(api.post(f"/api/v1/jobs/{job_id}/progress", json={"progress": 50, "message": "half"})) == {
        "ok": True
    }
    assert sdk_json(api.post(f"/api/v1/jobs/{job_id}/progress", json={"progress": 150})) == {"ok": True}
    job = sdk_json(api.get(f"/api/v1/jobs/{job_id}"))["job"]
    assert job["progress"] == 100 and [entry["message"] for entry in job["logs"]] == ["half"]
    assert "lease_token" not in job


def test_not_found_error_envelope(api: httpx.Client) -> None:
    response = api.get(f"/api/v1/jobs/{MISSING_ID}")
    assert response.status_code == 404
    body = sdk_json(response)
    # The original's test: exactly {ok, error}, error exactly {code, message, details: null}.
    assert body == {
        "ok": False,
        "error": {"code": "JOB_NOT_FOUND", "message": f"Job '{MISSING_ID}' not found", "details": None},
    }


def test_unique_key_conflict_and_delayed_job(api: httpx.Client) -> None:
    push(api, "sdk-unique", unique_key="order-42")
    duplicate = api.post("/api/v1/queues/sdk-unique/jobs", json={"name": "task", "data": {}, "unique_key": "order-42"})
    assert duplicate.status_code == 409 and sdk_json(duplicate)["error"]["code"] == "DUPLICATE_KEY"
    push(api, "sdk-delayed", delay_ms=60_000)
    assert sdk_json(api.get("/api/v1/queues/sdk-delayed/jobs")) == {"ok": True, "job": None}


def test_framework_errors_are_json_envelopes(api: httpx.Client) -> None:
    cases = [
        (api.get("/api/v1/no-such-route"), 404),
        (api.delete("/api/v1/queues"), 405),
        (api.post("/api/v1/queues/sdk-err/jobs", content=b"{bad"), 400),
        (api.post("/api/v1/queues/sdk-err/jobs", json={"name": "a", "data": "x" * 3_000_000}), 413),
        (api.get("/api/v1/jobs/not-a-uuid"), 400),
        (api.get("/api/v1/queues/sdk-err/jobs?count=abc"), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        body = sdk_json(response)
        assert body["ok"] is False and set(body["error"]) == {"code", "message", "details"}, body


# --------------------------------------------------------------------------- queues, schedules, health


def test_queue_listing_and_stats_shapes(api: httpx.Client) -> None:
    push(api, "sdk-stats")
    push(api, "sdk-stats")
    pull_one(api, "sdk-stats")
    queues = sdk_json(api.get("/api/v1/queues"))["queues"]
    entry = next(queue for queue in queues if queue["name"] == "sdk-stats")
    assert set(entry["counts"]) >= COUNT_KEYS
    counts = sdk_json(api.get("/api/v1/queues/sdk-stats/stats"))["counts"]
    assert set(counts) >= COUNT_KEYS and (counts["waiting"], counts["active"]) == (1, 1)
    unknown = sdk_json(api.get("/api/v1/queues/sdk-never-used/stats"))["counts"]
    assert all(unknown[key] == 0 for key in COUNT_KEYS)


def test_schedule_routes_as_the_sdks_call_them(api: httpx.Client) -> None:
    created = api.post(
        "/api/v1/schedules",
        json={"name": "daily-report", "queue": "reports", "job_name": "generate-report",
              "job_data": {"format": "pdf"}, "cron_expr": "0 9 * * *"},
    )  # fmt: skip
    assert created.status_code == 201
    schedule = sdk_json(created)["schedule"]
    assert (schedule["name"], schedule["cron_expr"], schedule["paused"], schedule["execution_count"]) == (
        "daily-report", "0 9 * * *", False, 0,
    )  # fmt: skip
    # Go's ScheduleInput: job_options nested, every_ms, max_executions, timezone.
    go_style = {"name": "go-sched", "queue": "reports", "job_name": "j", "job_options": {"priority": 3},
                "every_ms": 60000, "max_executions": 5, "timezone": "UTC"}  # fmt: skip
    assert api.post("/api/v1/schedules", json=go_style).status_code == 201
    names = {s["name"] for s in sdk_json(api.get("/api/v1/schedules"))["schedules"]}
    assert {"daily-report", "go-sched"} <= names
    assert sdk_json(api.get("/api/v1/schedules/daily-report"))["schedule"]["job_data"] == {"format": "pdf"}
    # Node/Go pause and resume with no body; Python with {}.
    assert sdk_json(api.post("/api/v1/schedules/daily-report/pause")) == {"ok": True}
    assert sdk_json(api.get("/api/v1/schedules/daily-report"))["schedule"]["paused"] is True
    assert sdk_json(api.post("/api/v1/schedules/daily-report/resume", json={})) == {"ok": True}
    assert sdk_json(api.delete("/api/v1/schedules/daily-report")) == {"ok": True}
    assert sdk_json(api.delete("/api/v1/schedules/daily-report")) == {"ok": True}
    missing = api.get("/api/v1/schedules/daily-report")
    assert missing.status_code == 404 and sdk_json(missing)["error"]["code"] == "SCHEDULE_NOT_FOUND"
    bad = api.post("/api/v1/schedules", json={"name": "bad-cron", "queue": "w", "job_name": "t", "cron_expr": "nope"})
    assert bad.status_code == 400 and sdk_json(bad)["error"]["code"] == "VALIDATION_ERROR"


def test_health_keys(api: httpx.Client) -> None:
    body = sdk_json(api.get("/api/v1/health"))
    assert body["ok"] is True and body["status"] == "healthy"
    assert isinstance(body["version"], str) and isinstance(body["uptime_seconds"], int)


# --------------------------------------------------------------------------- documents and pages


def test_openapi_document_matches_the_original_tests(api: httpx.Client) -> None:
    response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200 and "json" in response.headers["content-type"]
    document = sdk_json(response)
    assert "openapi" in document and document["info"]["title"] == "RustQueue API"
    for path in (
        "/api/v1/queues/{queue}/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/queues",
        "/api/v1/schedules",
        "/api/v1/health",
        "/api/v1/events",
        "/api/v1/metrics/prometheus",
    ):
        assert path in document["paths"], path
    assert not [path for path in document["paths"] if "{job_id}" in path]
    parameters = document["paths"]["/api/v1/jobs/{id}"]["get"]["parameters"]
    assert [p["name"] for p in parameters if p["in"] == "path"] == ["id"]
    schemas = document["components"]["schemas"]
    for name in ("Job", "JobState", "Schedule", "QueueCounts", "QueueOrdering", "JobEvent", "ErrorResponse"):
        assert name in schemas, name
    docs = api.get("/api/v1/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"] and "scalar" in docs.text.lower()


def test_landing_and_dashboard_pages(api: httpx.Client) -> None:
    landing = api.get("/")
    assert landing.status_code == 200 and "text/html" in landing.headers["content-type"]
    for fragment in ("Background Jobs", "Without Infrastructure", "Queueing Infrastructure Without the", "Ops Tax"):
        assert fragment in landing.text, fragment
    for path in ("/examples", "/production", "/blog/background-jobs-without-redis", "/blog/crash-safe-email-queue"):
        page = api.get(path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], path
    dashboard = api.get("/dashboard")
    assert dashboard.status_code == 200 and "text/html" in dashboard.headers["content-type"]
    assert "RustQueue" in dashboard.text
    assert api.get("/dashboard/nonexistent.js").status_code == 404


def test_cors_preflight_and_simple_requests(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT) as client:
        preflight = client.options(
            "/api/v1/health",
            headers={"Origin": "https://example.com", "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "Content-Type"},
        )  # fmt: skip
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-methods" in preflight.headers
        assert "access-control-allow-headers" in preflight.headers
        simple = client.get("/api/v1/health", headers={"Origin": "https://example.com"})
        assert simple.status_code == 200 and simple.headers["access-control-allow-origin"] == "*"


def test_prometheus_metric_names(api: httpx.Client) -> None:
    job_id = push(api, "sdk-metrics")
    pull_one(api, "sdk-metrics")
    api.post(f"/api/v1/jobs/{job_id}/ack")
    response = api.get("/api/v1/metrics/prometheus")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    for name in (
        "rustqueue_jobs_pushed_total",
        "rustqueue_jobs_pulled_total",
        "rustqueue_jobs_completed_total",
        "rustqueue_http_requests_total",
        "rustqueue_websocket_clients_connected",
    ):
        assert name in response.text, name


# --------------------------------------------------------------------------- websocket


def next_event(ws: ClientConnection, queue_prefix: str = "sdk-events", timeout: float = 5.0) -> dict[str, Any]:
    """The next frame about one of this test's queues (schedules of other tests may fire meanwhile)."""
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        assert set(frame) == EVENT_KEYS and frame["timestamp"].endswith("Z"), frame
        if frame["queue"].startswith(queue_prefix):
            event: dict[str, Any] = frame
            return event


def test_websocket_frames_for_push_ack_dlq_cancel_and_none_for_retry(server: ServerProcess, api: httpx.Client) -> None:
    url = server.http_url.replace("http://", "ws://") + "/api/v1/events"
    with ws_connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        queue = "sdk-events"
        job_id = push(api, queue)
        assert_event(next_event(ws), job_id, queue, "job.pushed")
        pull_one(api, queue)
        api.post(f"/api/v1/jobs/{job_id}/ack")
        assert_event(next_event(ws), job_id, queue, "job.completed")

        retry_id = push(api, queue, max_attempts=3)
        assert_event(next_event(ws), retry_id, queue, "job.pushed")
        pull_one(api, queue)
        assert sdk_json(api.post(f"/api/v1/jobs/{retry_id}/fail", json={"error": "transient"}))["retry"] is True
        # A retry emits nothing (other tests' schedules may still fire pushes on their own queues).
        assert [frame for frame in drain_events(ws, 0.3) if frame["job_id"] == retry_id] == []

        dead_id = push(api, queue + "-dlq", max_attempts=1)
        assert_event(next_event(ws), dead_id, queue + "-dlq", "job.pushed")
        pull_one(api, queue + "-dlq")
        api.post(f"/api/v1/jobs/{dead_id}/fail", json={"error": "fatal"})
        assert_event(next_event(ws), dead_id, queue + "-dlq", "job.failed")

        cancel_id = push(api, queue + "-cancel")
        assert_event(next_event(ws), cancel_id, queue + "-cancel", "job.pushed")
        api.post(f"/api/v1/jobs/{cancel_id}/cancel")
        assert_event(next_event(ws), cancel_id, queue + "-cancel", "job.cancelled")


def drain_events(ws: ClientConnection, quiet: float) -> list[dict[str, Any]]:
    """Every frame that arrives until none came for ``quiet`` seconds."""
    frames: list[dict[str, Any]] = []
    while True:
        try:
            frames.append(json.loads(ws.recv(timeout=quiet)))
        except TimeoutError:
            return frames


def assert_event(frame: dict[str, Any], job_id: str, queue: str, event: str) -> None:
    assert (frame["event"], frame["job_id"], frame["queue"]) == (event, job_id, queue), frame


# --------------------------------------------------------------------------- auth on


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("sdk-compat-auth")
    config = workdir / "rustqueue.toml"
    config.write_text('[auth]\nenabled = true\ntokens = ["test-token"]\n')
    with ServerProcess(["--plugins=http,tcp,dashboard,metrics,auth", "--config", str(config)], cwd=workdir) as running:
        yield running


def test_auth_enabled_as_the_original_tests_expect(auth_server: ServerProcess) -> None:
    with httpx.Client(base_url=auth_server.http_url, headers=SDK_HEADERS, timeout=TIMEOUT) as client:
        for public in ("/", "/examples", "/api/v1/openapi.json", "/api/v1/metrics/prometheus"):
            assert client.get(public).status_code == 200, public
        health = client.get("/api/v1/health")
        assert health.status_code == 200 and sdk_json(health)["status"] == "healthy"
        job = {"name": "task", "data": {}}
        missing = client.post("/api/v1/queues/production/jobs", json=job)
        assert missing.status_code == 401
        assert sdk_json(missing)["error"]["code"] == "UNAUTHORIZED" and "Missing" in missing.json()["error"]["message"]
        wrong = client.post("/api/v1/queues/production/jobs", json=job, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and "Invalid" in sdk_json(wrong)["error"]["message"]
        bearer = {"Authorization": "Bearer test-token"}
        pushed = client.post("/api/v1/queues/production/jobs", json=job, headers=bearer)
        assert pushed.status_code == 201
        job_id = sdk_json(pushed)["id"]
        pulled = sdk_json(client.get("/api/v1/queues/production/jobs", headers=bearer))["job"]
        assert (pulled["id"], pulled["state"]) == (job_id, "active")
        assert sdk_json(client.post(f"/api/v1/jobs/{job_id}/ack", json={"result": None}, headers=bearer))["ok"]
        dashboard = client.get("/dashboard", headers=bearer)
        assert dashboard.status_code == 200 and "RustQueue" in dashboard.text
        counts = sdk_json(client.get("/api/v1/queues/production/stats", headers=bearer))["counts"]
        assert (counts["waiting"], counts["completed"]) == (0, 1)
    with httpx.Client(base_url=auth_server.http_url, timeout=TIMEOUT) as client:
        preflight = client.options(
            "/api/v1/queues/production/jobs",
            headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "Authorization"},
        )  # fmt: skip
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-headers" in preflight.headers
