"""Job routes over a real engine: shapes of PROTOCOL §3.4, the SDK leniencies of §10.5, error bodies."""

from __future__ import annotations

import re
import uuid
from typing import Any

ORIGINAL_JOB_KEYS = [
    "id",
    "custom_id",
    "name",
    "queue",
    "data",
    "result",
    "state",
    "progress",
    "logs",
    "priority",
    "delay_until",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "max_attempts",
    "attempt",
    "backoff",
    "backoff_delay_ms",
    "last_error",
    "ttl_ms",
    "timeout_ms",
    "unique_key",
    "tags",
    "group_id",
    "metadata",
    "depends_on",
    "flow_id",
    "lifo",
    "remove_on_complete",
    "remove_on_fail",
    "worker_id",
    "last_heartbeat",
]
Z_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")
OFFSET_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["ok"] is False
    assert set(body) == {"ok", "error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["details"] is None
    error: dict[str, Any] = body["error"]
    return error


# --------------------------------------------------------------------------- push


async def test_push_single_answers_201_with_a_v7_uuid(client, api):
    response = await client.post("/api/v1/queues/emails/jobs", json={"name": "send", "data": {"to": "a@b.c"}})
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["ok"] is True and set(body) == {"ok", "id"}
    parsed = uuid.UUID(body["id"])
    assert parsed.version == 7 and str(parsed) == body["id"]
    job = await api.job(body["id"])
    assert (job["name"], job["queue"], job["state"], job["data"]) == (
        "send",
        "emails",
        "waiting",
        {"to": "a@b.c"},
    )


async def test_push_batch_array_body_returns_ids_in_input_order(client, api):
    items = [{"name": f"job-{i}", "data": {"i": i}} for i in range(3)]
    response = await client.post("/api/v1/queues/batch/jobs", json=items)
    assert response.status_code == 201
    ids = response.json()["ids"]
    assert len(ids) == 3
    for i, job_id in enumerate(ids):
        assert (await api.job(job_id))["data"] == {"i": i}


async def test_push_options_are_flattened_and_nested_options_ignored(client, api):
    flat = await api.push(
        priority=7,
        max_attempts=5,
        tags=["a"],
        custom_id="c-1",
        metadata={"k": 1},
        backoff="fixed",
        backoff_delay_ms=250,
        remove_on_complete=True,
    )
    job = await api.job(flat)
    assert (job["priority"], job["max_attempts"], job["tags"], job["custom_id"]) == (7, 5, ["a"], "c-1")
    assert (job["backoff"], job["backoff_delay_ms"], job["remove_on_complete"]) == ("fixed", 250, True)
    assert job["metadata"] == {"k": 1}
    nested = await api.push(options={"priority": 9, "max_attempts": 9})
    job = await api.job(nested)
    assert (job["priority"], job["max_attempts"]) == (0, 3)


async def test_push_with_delay_creates_delayed_job(client, api):
    job = await api.job(await api.push(delay_ms=60_000))
    assert job["state"] == "delayed"
    assert Z_TIMESTAMP.match(job["delay_until"])


async def test_push_null_data_is_stored_as_null(client, api):
    response = await client.post("/api/v1/queues/tasks/jobs", json={"name": "n", "data": None})
    assert response.status_code == 201
    assert (await api.job(response.json()["id"]))["data"] is None


async def test_push_errors(client):
    malformed = await client.post("/api/v1/queues/tasks/jobs", content=b"{not json", headers=JSON_HEADERS)
    assert malformed.status_code == 400 and error_of(malformed)["code"] == "VALIDATION_ERROR"
    missing_data = await client.post("/api/v1/queues/tasks/jobs", json={"name": "x"})
    assert missing_data.status_code == 422
    assert error_of(missing_data)["code"] == "VALIDATION_ERROR"
    wrong_type = await client.post("/api/v1/queues/tasks/jobs", json={"name": "x", "data": {}, "priority": "hi"})
    assert wrong_type.status_code in (400, 422)
    scalar = await client.post("/api/v1/queues/tasks/jobs", json=42)
    assert scalar.status_code == 422
    bad_name = await client.post("/api/v1/queues/tasks/jobs", json={"name": "bad name!", "data": {}})
    assert bad_name.status_code == 400
    error = error_of(bad_name)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"].startswith("Validation error: Job name must be non-empty")
    bad_queue = await client.post("/api/v1/queues/bad%20queue/jobs", json={"name": "ok", "data": {}})
    assert bad_queue.status_code == 400
    assert "Queue name" in error_of(bad_queue)["message"]


async def test_duplicate_unique_key_is_409(client, api):
    await api.push(unique_key="k1")
    response = await client.post("/api/v1/queues/tasks/jobs", json={"name": "t", "data": {}, "unique_key": "k1"})
    assert response.status_code == 409
    error = error_of(response)
    assert error == {"code": "DUPLICATE_KEY", "message": "Duplicate unique key 'k1'", "details": None}


# --------------------------------------------------------------------------- job JSON


async def test_job_json_has_the_original_keys_in_order_and_utc_z_timestamps(client, api):
    job_id = await api.push()
    response = await client.get(f"/api/v1/jobs/{job_id}")
    job = response.json()["job"]
    assert list(job) == [k for k in ORIGINAL_JOB_KEYS if k != "metadata"]
    for key in ("created_at", "updated_at"):
        assert Z_TIMESTAMP.match(job[key]), job[key]
    for key in (
        "custom_id",
        "result",
        "progress",
        "delay_until",
        "started_at",
        "completed_at",
        "last_error",
        "ttl_ms",
        "timeout_ms",
        "unique_key",
        "group_id",
        "flow_id",
        "worker_id",
        "last_heartbeat",
    ):
        assert key in job and job[key] is None, key
    assert "lease_token" not in job


async def test_metadata_key_appears_in_place_when_set(api):
    job = await api.job(await api.push(metadata={"trace": "x"}))
    assert list(job) == ORIGINAL_JOB_KEYS


async def test_get_unknown_job_is_404_envelope_naming_the_id(client):
    missing = str(uuid.uuid4())
    response = await client.get(f"/api/v1/jobs/{missing}", headers=JSON_HEADERS)
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "JOB_NOT_FOUND",
        "message": f"Job '{missing}' not found",
        "details": None,
    }


async def test_non_uuid_job_id_is_400(client):
    response = await client.get("/api/v1/jobs/not-a-uuid")
    assert response.status_code == 400
    assert error_of(response)["code"] == "VALIDATION_ERROR"


# --------------------------------------------------------------------------- pull


async def test_pull_shapes_by_count(client, api):
    empty = await client.get("/api/v1/queues/tasks/jobs")
    assert empty.json() == {"ok": True, "job": None}
    ids = [await api.push(data={"i": i}) for i in range(3)]
    one = (await client.get("/api/v1/queues/tasks/jobs?count=1")).json()
    assert set(one) == {"ok", "job"} and one["job"]["id"] == ids[0]
    assert one["job"]["state"] == "active" and Z_TIMESTAMP.match(one["job"]["started_at"])
    assert isinstance(one["job"]["lease_token"], str) and one["job"]["lease_token"]
    many = (await client.get("/api/v1/queues/tasks/jobs?count=5")).json()
    assert [job["id"] for job in many["jobs"]] == ids[1:]
    assert all(job["lease_token"] for job in many["jobs"])
    zero = (await client.get("/api/v1/queues/tasks/jobs?count=0")).json()
    assert zero == {"ok": True, "jobs": []}
    # A GET never shows the lease.
    assert "lease_token" not in await api.job(ids[0])


async def test_pull_orders_by_priority_then_fifo(client, api):
    low = await api.push(priority=1)
    high = await api.push(priority=10)
    assert (await api.pull())["id"] == high
    assert (await api.pull())["id"] == low


async def test_pull_bad_count_is_400(client):
    for query in ("count=abc", "count=-1"):
        response = await client.get(f"/api/v1/queues/tasks/jobs?{query}")
        assert response.status_code == 400, query
        assert error_of(response)["code"] == "VALIDATION_ERROR"


async def test_pull_long_poll_times_out_empty(client):
    response = await client.get("/api/v1/queues/idle/jobs?wait_ms=50")
    assert response.json() == {"ok": True, "job": None}


# --------------------------------------------------------------------------- ack


async def test_ack_with_result_completes_the_job(client, api):
    job_id = await api.push()
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{job_id}/ack", json={"result": {"out": 1}})
    assert response.status_code == 200 and response.json() == {"ok": True}
    job = await api.job(job_id)
    assert job["state"] == "completed" and job["result"] == {"out": 1}
    assert Z_TIMESTAMP.match(job["completed_at"])


async def test_ack_with_json_content_type_and_empty_body_is_accepted(client, api):
    """The Node and Go SDKs send no body but a JSON Content-Type (PROTOCOL §10.5)."""
    job_id = await api.push()
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{job_id}/ack", content=b"", headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}
    job = await api.job(job_id)
    assert job["state"] == "completed" and job["result"] is None


async def test_ack_with_empty_object_and_without_content_type(client, api):
    first, second = await api.push(), await api.push()
    await client.get("/api/v1/queues/tasks/jobs?count=2")
    assert (await client.post(f"/api/v1/jobs/{first}/ack", json={})).status_code == 200
    assert (await client.post(f"/api/v1/jobs/{second}/ack")).status_code == 200


async def test_ack_errors(client, api):
    waiting = await api.push()
    response = await client.post(f"/api/v1/jobs/{waiting}/ack", json={})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "INVALID_STATE"
    assert error["message"] == "Job is in invalid state 'Waiting' for operation (expected: Active)"
    missing = str(uuid.uuid4())
    assert (await client.post(f"/api/v1/jobs/{missing}/ack", json={})).status_code == 404
    await api.pull()
    malformed = await client.post(f"/api/v1/jobs/{waiting}/ack", content=b"{", headers=JSON_HEADERS)
    assert malformed.status_code == 400


async def test_ack_with_a_stale_lease_token_is_rejected(client, api):
    job_id = await api.push()
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{job_id}/ack", json={"lease_token": "not-the-lease"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "LEASE_LOST"


async def test_ack_batch_reports_each_item(client, api):
    first, second = await api.push(), await api.push()
    await client.get("/api/v1/queues/tasks/jobs?count=2")
    missing = str(uuid.uuid4())
    response = await client.post(
        "/api/v1/jobs/ack-batch",
        json={"items": [{"id": first, "result": 1}, {"id": second}, {"id": missing}]},
    )
    body = response.json()
    assert response.status_code == 200
    assert (body["ok"], body["acked"], body["failed"]) == (False, 2, 1)
    assert body["results"][0] == {"id": first, "ok": True}
    assert body["results"][2]["ok"] is False and body["results"][2]["error"]["code"] == "JOB_NOT_FOUND"
    assert (await api.job(first))["result"] == 1
    ids_form = await client.post("/api/v1/jobs/ack-batch", json={"ids": []})
    assert ids_form.json()["ok"] is True
    neither = await client.post("/api/v1/jobs/ack-batch", json={})
    assert neither.status_code == 400


# ------------------------------------------------------------------------ fail, cancel, progress, heartbeat


async def test_fail_with_retry_answers_next_attempt_with_offset(client, api):
    job_id = await api.push()
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{job_id}/fail", json={"error": "boom"})
    body = response.json()
    assert response.status_code == 200 and list(body) == ["ok", "retry", "next_attempt_at"]
    assert body["retry"] is True
    assert OFFSET_TIMESTAMP.match(body["next_attempt_at"]), body["next_attempt_at"]
    job = await api.job(job_id)
    assert (job["state"], job["attempt"], job["last_error"]) == ("delayed", 1, "boom")


async def test_fail_into_dlq_omits_next_attempt(client, api):
    job_id = await api.push(max_attempts=1)
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{job_id}/fail", json={"error": "fatal"})
    assert response.json() == {"ok": True, "retry": False}
    assert (await api.job(job_id))["state"] == "dlq"


async def test_fail_requires_error(client, api):
    job_id = await api.push()
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{job_id}/fail", json={})
    assert response.status_code == 422


async def test_cancel_ignores_body_and_rejects_active(client, api):
    job_id = await api.push()
    response = await client.post(f"/api/v1/jobs/{job_id}/cancel", content=b"", headers=JSON_HEADERS)
    assert response.json() == {"ok": True}
    assert (await api.job(job_id))["state"] == "cancelled"
    active = await api.push()
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{active}/cancel", json={})
    assert response.status_code == 409


async def test_progress_and_heartbeat(client, api):
    job_id = await api.push()
    await api.pull()
    response = await client.post(f"/api/v1/jobs/{job_id}/progress", json={"progress": 150, "message": "half"})
    assert response.json() == {"ok": True}
    job = await api.job(job_id)
    assert job["progress"] == 100
    assert job["logs"][-1]["message"] == "half" and Z_TIMESTAMP.match(job["logs"][-1]["timestamp"])
    for body in ({"progress": 256}, {"progress": -1}, {"progress": "x"}, {}):
        assert (await client.post(f"/api/v1/jobs/{job_id}/progress", json=body)).status_code == 422, body
    beat = await client.post(f"/api/v1/jobs/{job_id}/heartbeat", content=b"", headers=JSON_HEADERS)
    assert beat.json() == {"ok": True}
    assert Z_TIMESTAMP.match((await api.job(job_id))["last_heartbeat"])
    waiting = await api.push()
    assert (await client.post(f"/api/v1/jobs/{waiting}/heartbeat", json={})).status_code == 409


# --------------------------------------------------------------------------- rustqueue additions


async def test_release_returns_the_job_without_counting_a_failure(client, api):
    job_id = await api.push()
    await api.pull()
    assert (await client.post(f"/api/v1/jobs/{job_id}/release")).json() == {"ok": True}
    job = await api.job(job_id)
    assert (job["state"], job["attempt"]) == ("waiting", 0)


async def test_retry_promote_delete_and_explain(client, api):
    dead = await api.push(max_attempts=1)
    await api.pull()
    await client.post(f"/api/v1/jobs/{dead}/fail", json={"error": "x"})
    assert (await client.post(f"/api/v1/jobs/{dead}/retry")).json() == {"ok": True}
    assert (await api.job(dead))["state"] == "waiting"
    assert (await client.post(f"/api/v1/jobs/{dead}/retry")).status_code == 409

    delayed = await api.push(delay_ms=600_000)
    explained = (await client.get(f"/api/v1/jobs/{delayed}/explain")).json()
    assert explained["ok"] is True and any(r["code"] == "delayed_until" for r in explained["reasons"])
    assert (await client.post(f"/api/v1/jobs/{delayed}/promote")).json() == {"ok": True}
    assert (await api.job(delayed))["state"] == "waiting"

    assert (await client.delete(f"/api/v1/jobs/{delayed}")).json() == {"ok": True}
    assert (await client.get(f"/api/v1/jobs/{delayed}")).status_code == 404
    assert (await client.delete(f"/api/v1/jobs/{delayed}")).status_code == 404


async def test_list_jobs_filters_and_pages(client, api):
    ids = [await api.push("listed") for _ in range(5)]
    await api.push("other")
    await api.pull("listed")
    first = (await client.get("/api/v1/jobs?queue=listed&limit=2")).json()
    assert first["ok"] is True and len(first["jobs"]) == 2 and first["next_cursor"]
    seen = [job["id"] for job in first["jobs"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await client.get("/api/v1/jobs", params={"queue": "listed", "limit": 2, "cursor": cursor})).json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids)
    waiting = (await client.get("/api/v1/jobs?queue=listed&state=waiting")).json()["jobs"]
    assert len(waiting) == 4 and all(job["state"] == "waiting" for job in waiting)
    both = (await client.get("/api/v1/jobs?queue=listed&state=waiting,active")).json()["jobs"]
    assert len(both) == 5


async def test_pull_with_consumer_id_and_lease(client, api):
    job_id = await api.push()
    response = await client.get("/api/v1/queues/tasks/jobs?consumer_id=worker-7&lease_ms=60000")
    job = response.json()["job"]
    assert (job["id"], job["worker_id"]) == (job_id, "worker-7")
    bad = await client.get("/api/v1/queues/tasks/jobs?lease_ms=0")
    assert bad.status_code == 400
