"""The dashboard's JSON API and static assets, through the http plugin's app over a real engine."""

from __future__ import annotations

import logging
from typing import Any

from litestar.testing import AsyncTestClient
from rustqueue_dashboard.state import state_for

from rustqueue_core.engine import RustQueue

Client = AsyncTestClient[Any]


async def push(client: Client, queue: str, **body: Any) -> str:
    response = await client.post(f"/api/v1/queues/{queue}/jobs", json={"name": "task", "data": {}, **body})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


# --------------------------------------------------------------------------- assets


async def test_index_and_assets_are_served_with_their_content_types(client: Client) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<meta name="rq-prefix" content="/dashboard">' in page.text
    assert "/dashboard/js/app.js" in page.text
    script = await client.get("/dashboard/js/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "parseRoute" in script.text
    style = await client.get("/dashboard/style.css")
    assert style.headers["content-type"].startswith("text/css")
    icon = await client.get("/dashboard/favicon.svg")
    assert icon.headers["content-type"] == "image/svg+xml"


async def test_unknown_or_escaping_asset_paths_answer_404(client: Client) -> None:
    for path in ("/dashboard/missing.js", "/dashboard/js/../../plugin.py", "/dashboard/settings.py"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["ok"] is False


async def test_every_page_module_the_shell_imports_is_shipped(client: Client) -> None:
    import re

    shell = (await client.get("/dashboard/js/app.js")).text
    modules = re.findall(r'from "\./([\w/]+\.js)"', shell)
    assert "pages/job.js" in modules and len(modules) >= 9
    for module in modules:
        response = await client.get(f"/dashboard/js/{module}")
        assert response.status_code == 200, module


# --------------------------------------------------------------------------- overview, jobs


async def test_session_without_auth_is_anonymous(client: Client) -> None:
    assert (await client.get("/dashboard/api/session")).json() == {
        "ok": True,
        "principal": "anonymous",
        "anonymous": True,
    }


async def test_overview_reports_counts_rates_and_schedules(client: Client, engine: RustQueue) -> None:
    for _ in range(3):
        await push(client, "emails")
    await push(client, "reports")
    pulled = (await client.get("/api/v1/queues/emails/jobs")).json()["job"]
    await client.post(f"/api/v1/jobs/{pulled['id']}/ack", json={})
    await engine.create_schedule(name="tick", queue="reports", job_name="t", every_ms=60_000)
    data = (await client.get("/dashboard/api/overview")).json()
    assert data["ok"] is True and data["status"] == "ok"
    rows = {row["name"]: row for row in data["queues"]}
    assert rows["emails"]["counts"]["waiting"] == 2
    assert rows["emails"]["counts"]["completed"] == 1
    assert rows["emails"]["published"] == 3 and rows["emails"]["acked"] == 1
    assert rows["emails"]["publish_rate_per_sec"] > 0
    assert rows["emails"]["config"]["ordering"] == "max_first"
    assert data["totals"]["waiting"] == 3 and data["totals"]["total"] == 4
    assert data["schedules"] == {"total": 1, "paused": 0, "active": 1}


async def test_job_listing_filters_and_pages_with_a_cursor(client: Client) -> None:
    ids = [await push(client, "work", tags=["red"] if i % 2 else ["blue"], group_id="g1") for i in range(7)]
    await push(client, "other")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = "queue=work&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/dashboard/api/jobs?{query}")).json()
        assert len(page["jobs"]) <= 3
        seen.extend(job["id"] for job in page["jobs"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    red = (await client.get("/dashboard/api/jobs?tags=red")).json()["jobs"]
    assert {job["id"] for job in red} == {ids[i] for i in (1, 3, 5)}
    assert "data" not in red[0] and red[0]["tags"] == ["red"]
    waiting = (await client.get("/dashboard/api/jobs?queue=work&state=waiting,active&group_id=g1")).json()
    assert len(waiting["jobs"]) == 7
    none = (await client.get("/dashboard/api/jobs?state=dlq")).json()
    assert none == {"ok": True, "jobs": [], "next_cursor": None}


async def test_job_detail_has_explain_lease_and_dag_neighbours(client: Client) -> None:
    parent = await push(client, "flow", data={"step": 1}, flow_id="f1")
    child = await push(client, "flow", data={"step": 2}, flow_id="f1", depends_on=[parent])
    detail = (await client.get(f"/dashboard/api/jobs/{child}")).json()
    assert detail["job"]["state"] == "blocked" and detail["job"]["data"] == {"step": 2}
    assert [p["id"] for p in detail["parents"]] == [parent]
    assert detail["reasons"][0]["code"] == "blocked_by" and parent in detail["reasons"][0]["detail"]
    parent_detail = (await client.get(f"/dashboard/api/jobs/{parent}")).json()
    assert [c["id"] for c in parent_detail["children"]] == [child]
    assert parent_detail["children_truncated"] is False
    pulled = (await client.get("/api/v1/queues/flow/jobs")).json()["job"]
    assert pulled["id"] == parent
    active = (await client.get(f"/dashboard/api/jobs/{parent}")).json()
    assert active["job"]["lease_expires_at"] is not None and active["job"]["deliveries"] == 1
    assert "lease_token" not in active["job"]
    assert active["reasons"][0]["code"] == "lease_held"


async def test_job_detail_errors(client: Client) -> None:
    missing = await client.get("/dashboard/api/jobs/01900000-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "JOB_NOT_FOUND"
    bad = await client.get("/dashboard/api/jobs/not-a-uuid")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"


# --------------------------------------------------------------------------- qrusty-model queues


async def test_create_rename_toggle_duplicates_and_errors(client: Client, engine: RustQueue) -> None:
    created = await client.post(
        "/dashboard/api/queues",
        json={"name": "prio", "ordering": "MinFirst", "priority_kind": "text", "allow_duplicates": False},
    )
    assert created.status_code == 201, created.text
    assert created.json()["config"]["ordering"] == "min_first"
    again = await client.post("/dashboard/api/queues", json={"name": "prio"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "QUEUE_EXISTS"
    bad = await client.post("/dashboard/api/queues", json={"name": "x", "ordering": "fair"})
    assert bad.status_code == 400 and "ordering" in bad.json()["error"]["message"]
    renamed = await client.post("/dashboard/api/queues/prio/update", json={"name": "prio2", "allow_duplicates": True})
    assert renamed.status_code == 200, renamed.text
    config = await engine.get_queue_config("prio2")
    assert config.allow_duplicates is True and config.priority_kind == "text"
    missing = await client.post("/dashboard/api/queues/nope/update", json={"allow_duplicates": True})
    assert missing.status_code == 404
    empty = await client.post("/dashboard/api/queues/prio2/update", json={})
    assert empty.status_code == 400


async def test_publish_consume_ack_and_nack_a_test_message(client: Client, engine: RustQueue) -> None:
    await client.post("/dashboard/api/queues", json={"name": "q", "ordering": "max_first"})
    low = await client.post("/dashboard/api/queues/q/publish", json={"payload": "low", "priority": 1})
    high = await client.post("/dashboard/api/queues/q/publish", json={"payload": "high", "priority": "9"})
    assert low.status_code == high.status_code == 201
    wrong = await client.post("/dashboard/api/queues/q/publish", json={"payload": "x", "priority": "abc"})
    assert wrong.status_code == 400
    negative = await client.post("/dashboard/api/queues/q/publish", json={"payload": "x", "priority": -1})
    assert negative.status_code == 400
    message = (await client.post("/dashboard/api/queues/q/consume", json={"timeout_seconds": 5})).json()["message"]
    assert message["payload"] == "high" and message["priority"] == 9 and message["max_retries"] == 3
    assert message["locked_by"] == "dashboard" and message["lease_token"]
    stale = await client.post(f"/dashboard/api/messages/{message['id']}/ack", json={"lease_token": "other"})
    assert stale.status_code == 409
    acked = await client.post(
        f"/dashboard/api/messages/{message['id']}/ack", json={"lease_token": message["lease_token"]}
    )
    assert acked.status_code == 200
    assert (await engine.get_job(message["id"])).state == "completed"  # type: ignore[union-attr]
    second = (await client.post("/dashboard/api/queues/q/consume")).json()["message"]
    nacked = await client.post(
        f"/dashboard/api/messages/{second['id']}/nack", json={"lease_token": second["lease_token"]}
    )
    assert nacked.json() == {"ok": True, "requeued": True, "state": "waiting"}
    job = await engine.get_job(second["id"])
    assert job is not None and job.state == "waiting" and job.name == "qrusty.message" and job.data == "low"
    await client.post("/dashboard/api/queues/q/consume")
    assert (await client.post("/dashboard/api/queues/q/consume")).json() == {"ok": True, "message": None}


async def test_text_priority_queue_takes_strings(client: Client) -> None:
    await client.post("/dashboard/api/queues", json={"name": "t", "priority_kind": "Text"})
    ok = await client.post("/dashboard/api/queues/t/publish", json={"payload": "p", "priority": "2026-01-01"})
    assert ok.status_code == 201
    wrong = await client.post("/dashboard/api/queues/t/publish", json={"payload": "p", "priority": 5})
    assert wrong.status_code == 400


async def test_series_collects_rates_and_depth(client: Client, engine: RustQueue) -> None:
    sampler = state_for(engine).sampler
    await push(client, "s")
    await sampler.sample()
    await push(client, "s")
    await push(client, "s")
    sampler._last_sample -= 2.0  # two seconds between the samples
    await sampler.sample()
    series = (await client.get("/dashboard/api/queues/s/series")).json()
    points = series["points"]
    assert len(points) >= 2
    assert points[-1]["pending"] == 3
    assert 0.5 <= points[-1]["publish_rate"] <= 1.0  # two pushes over about two seconds
    unknown = (await client.get("/dashboard/api/queues/none/series")).json()
    assert unknown["points"] == []


async def test_log_view_returns_lines_after_a_cursor(client: Client) -> None:
    logging.getLogger("rustqueue.test").warning("first line for the log view")
    first = (await client.get("/dashboard/api/logs")).json()
    assert first["capturing"] is True
    messages = [line["message"] for line in first["lines"]]
    assert "first line for the log view" in messages
    logging.getLogger("rustqueue.test").error("second line")
    later = (await client.get(f"/dashboard/api/logs?after={first['last']}")).json()
    # Other loggers (the HTTP client's own request log, when some earlier test raised the root level)
    # may interleave: only this test's logger is asserted.
    ours = [line for line in later["lines"] if line["logger"] == "rustqueue.test"]
    assert [line["message"] for line in ours] == ["second line"]
    assert ours[0]["level"] == "ERROR"
    assert "first line for the log view" not in [line["message"] for line in later["lines"]]
