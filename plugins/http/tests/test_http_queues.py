"""Queue and flow routes: listing, stats, DLQ (and its retry), pause/resume, purge, delete, flows."""

from __future__ import annotations

from typing import Any

COUNT_KEYS = ["waiting", "active", "delayed", "completed", "failed", "dlq", "blocked", "cancelled"]


async def dead_job(client: Any, api: Any, queue: str = "tasks") -> str:
    job_id: str = await api.push(queue, max_attempts=1)
    await api.pull(queue)
    response = await client.post(f"/api/v1/jobs/{job_id}/fail", json={"error": "fatal"})
    assert response.json()["retry"] is False
    return job_id


async def test_list_queues_sorted_with_counts(client, api):
    assert (await client.get("/api/v1/queues")).json() == {"ok": True, "queues": []}
    await api.push("reports")
    await api.push("emails")
    await api.push("emails")
    body = (await client.get("/api/v1/queues", headers={"Content-Type": "application/json"})).json()
    assert body["ok"] is True
    assert [q["name"] for q in body["queues"]] == ["emails", "reports"]
    emails = body["queues"][0]
    assert list(emails["counts"]) == COUNT_KEYS
    assert emails["counts"]["waiting"] == 2 and emails["paused"] is False


async def test_stats_counts_and_unknown_queue_zeros(client, api):
    await api.push()
    await api.push()
    await api.pull()
    counts = (await client.get("/api/v1/queues/tasks/stats")).json()["counts"]
    assert (counts["waiting"], counts["active"]) == (1, 1)
    unknown = (await client.get("/api/v1/queues/nothing-here/stats")).json()
    assert unknown == {"ok": True, "counts": dict.fromkeys(COUNT_KEYS, 0)}


async def test_dlq_lists_dead_jobs_with_limit(client, api):
    ids = [await dead_job(client, api) for _ in range(3)]
    listed = (await client.get("/api/v1/queues/tasks/dlq")).json()
    assert listed["ok"] is True
    assert sorted(job["id"] for job in listed["jobs"]) == sorted(ids)
    assert all(job["state"] == "dlq" and job["last_error"] == "fatal" for job in listed["jobs"])
    assert len((await client.get("/api/v1/queues/tasks/dlq?limit=2")).json()["jobs"]) == 2
    assert (await client.get("/api/v1/queues/tasks/dlq?limit=0")).json() == {"ok": True, "jobs": []}


async def test_dlq_retry_all_and_by_ids(client, api):
    first = await dead_job(client, api)
    second = await dead_job(client, api)
    third = await dead_job(client, api)
    by_id = (await client.post("/api/v1/queues/tasks/dlq/retry", json={"ids": [first]})).json()
    assert by_id == {"ok": True, "retried": 1, "failed": 0}
    assert (await api.job(first))["state"] == "waiting"
    rest = (await client.post("/api/v1/queues/tasks/dlq/retry")).json()
    assert rest == {"ok": True, "retried": 2, "failed": 0}
    for job_id in (second, third):
        job = await api.job(job_id)
        assert (job["state"], job["attempt"]) == ("waiting", 0)
    assert (await client.get("/api/v1/queues/tasks/dlq")).json()["jobs"] == []


async def test_pause_rejects_pushes_with_503_and_resume_restores(client, api):
    assert (await client.post("/api/v1/queues/tasks/pause")).json() == {"ok": True}
    response = await client.post("/api/v1/queues/tasks/jobs", json={"name": "t", "data": {}})
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "QUEUE_PAUSED",
        "message": "Queue 'tasks' is paused",
        "details": None,
    }
    listed = (await client.get("/api/v1/queues")).json()["queues"]
    assert listed == [] or listed[0]["paused"] is True
    assert (await client.post("/api/v1/queues/tasks/resume")).json() == {"ok": True}
    await api.push()


async def test_purge_and_delete_queue(client, api):
    for _ in range(3):
        await api.push("trash")
    await api.push("trash", delay_ms=60_000)
    # One active job: purge keeps it, delete removes it.
    pulled = await api.pull("trash")
    purged = (await client.post("/api/v1/queues/trash/purge")).json()
    assert purged == {"ok": True, "purged": 3}
    assert (await api.job(pulled["id"]))["state"] == "active"
    deleted = (await client.delete("/api/v1/queues/trash")).json()
    assert deleted == {"ok": True, "deleted": 1}
    assert (await client.get(f"/api/v1/jobs/{pulled['id']}")).status_code == 404


async def test_flow_summary_and_empty_flow(client, api):
    parent = await api.push("flows", flow_id="f-1")
    child = await api.push("flows", flow_id="f-1", depends_on=[parent])
    body = (await client.get("/api/v1/flows/f-1")).json()
    assert body["ok"] is True and body["flow_id"] == "f-1"
    assert sorted(job["id"] for job in body["jobs"]) == sorted([parent, child])
    summary = body["summary"]
    assert list(summary)[:7] == ["total", "waiting", "active", "blocked", "completed", "failed", "dlq"]
    assert (summary["total"], summary["waiting"], summary["blocked"]) == (2, 1, 1)
    empty = (await client.get("/api/v1/flows/none")).json()
    assert empty["ok"] is True and empty["jobs"] == [] and empty["summary"]["total"] == 0


async def test_queue_rate_limit_answers_429_with_retry_after(client, engine, api):
    await engine.configure_queue("limited", rate_limit_per_second=0.5, rate_limit_burst=1)
    await api.push("limited")
    response = await client.post("/api/v1/queues/limited/jobs", json={"name": "t", "data": {}})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    assert int(response.headers["retry-after"]) >= 1
