"""Schedule routes (PROTOCOL §3.4): create echoes with 201, validation errors, get, list, delete, pause."""

from __future__ import annotations

SCHEDULE_KEYS = [
    "name",
    "queue",
    "job_name",
    "job_data",
    "job_options",
    "cron_expr",
    "every_ms",
    "timezone",
    "max_executions",
    "execution_count",
    "paused",
    "last_run_at",
    "next_run_at",
    "created_at",
    "updated_at",
]


async def test_create_schedule_echoes_it_with_201(client):
    response = await client.post(
        "/api/v1/schedules",
        json={
            "name": "daily-report",
            "queue": "reports",
            "job_name": "generate",
            "job_data": {"format": "pdf"},
            "cron_expr": "0 9 * * *",
        },
    )
    assert response.status_code == 201
    schedule = response.json()["schedule"]
    assert list(schedule)[: len(SCHEDULE_KEYS)] == SCHEDULE_KEYS
    assert (schedule["name"], schedule["queue"], schedule["job_name"]) == (
        "daily-report",
        "reports",
        "generate",
    )
    assert (schedule["cron_expr"], schedule["paused"], schedule["execution_count"]) == ("0 9 * * *", False, 0)
    assert schedule["job_data"] == {"format": "pdf"} and schedule["job_options"] is None
    fetched = (await client.get("/api/v1/schedules/daily-report")).json()
    assert fetched["ok"] is True and fetched["schedule"]["job_data"] == {"format": "pdf"}


async def test_schedule_job_options_serialize_every_key_but_unset_metadata(client):
    response = await client.post(
        "/api/v1/schedules",
        json={
            "name": "opts",
            "queue": "q",
            "job_name": "j",
            "every_ms": 60_000,
            "job_options": {"priority": 3},
        },
    )
    options = response.json()["schedule"]["job_options"]
    assert options["priority"] == 3 and options["max_attempts"] is None
    assert "metadata" not in options and "delay_ms" in options


async def test_schedule_validation_errors_are_400(client):
    bad_cron = await client.post(
        "/api/v1/schedules", json={"name": "bad", "queue": "w", "job_name": "t", "cron_expr": "not a cron"}
    )
    assert bad_cron.status_code == 400 and bad_cron.json()["error"]["code"] == "VALIDATION_ERROR"
    neither = await client.post("/api/v1/schedules", json={"name": "n", "queue": "w", "job_name": "t"})
    assert neither.status_code == 400
    assert neither.json()["error"]["message"] == "Validation error: Schedule must have cron_expr or every_ms"
    both = await client.post(
        "/api/v1/schedules",
        json={"name": "b", "queue": "w", "job_name": "t", "cron_expr": "* * * * *", "every_ms": 1000},
    )
    assert both.status_code == 400
    missing = await client.post("/api/v1/schedules", json={"name": "m", "every_ms": 1000})
    assert missing.status_code == 422


async def test_list_pause_resume_delete(client):
    for name in ("a", "b"):
        await client.post("/api/v1/schedules", json={"name": name, "queue": "q", "job_name": "j", "every_ms": 60_000})
    listed = (await client.get("/api/v1/schedules", headers={"Content-Type": "application/json"})).json()
    assert sorted(s["name"] for s in listed["schedules"]) == ["a", "b"]
    assert (await client.post("/api/v1/schedules/a/pause")).json() == {"ok": True}
    assert (await client.get("/api/v1/schedules/a")).json()["schedule"]["paused"] is True
    assert (await client.post("/api/v1/schedules/a/resume", json={})).json() == {"ok": True}
    assert (await client.get("/api/v1/schedules/a")).json()["schedule"]["paused"] is False
    deleted = await client.delete("/api/v1/schedules/a", headers={"Content-Type": "application/json"})
    assert deleted.json() == {"ok": True}
    gone = await client.get("/api/v1/schedules/a")
    assert gone.status_code == 404
    assert gone.json()["error"] == {
        "code": "SCHEDULE_NOT_FOUND",
        "message": "Schedule not found: a",
        "details": None,
    }
    assert (await client.delete("/api/v1/schedules/a")).json() == {"ok": True}
    for action in ("pause", "resume"):
        response = await client.post(f"/api/v1/schedules/missing/{action}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "SCHEDULE_NOT_FOUND"
