"""Every JSON command of the TCP protocol: success shapes, error codes and messages."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from rustqueue_tcp.wire import JOB_WIRE_FIELDS

MISSING_ID = "00000000-0000-7000-8000-000000000000"


async def push(conn: Any, queue: str = "q", name: str = "job", **extra: Any) -> str:
    answer = await conn.call({"cmd": "push", "queue": queue, "name": name, **extra})
    assert answer["ok"] is True, answer
    return str(answer["id"])


async def pull_one(conn: Any, queue: str = "q") -> dict[str, Any]:
    answer = await conn.call({"cmd": "pull", "queue": queue})
    assert answer["ok"] is True and answer["job"] is not None, answer
    return dict(answer["job"])


def assert_error(answer: dict[str, Any], code: str, message: str | None = None) -> None:
    assert answer["ok"] is False, answer
    assert set(answer["error"]) == {"code", "message"}  # TCP errors carry no details
    assert answer["error"]["code"] == code, answer
    if message is not None:
        assert answer["error"]["message"] == message, answer


async def test_push_pull_ack_roundtrip_and_job_shape(conn: Any) -> None:
    job_id = await push(conn, data={"to": "a@b.c"})
    job = await pull_one(conn)
    assert job["id"] == job_id
    assert job["state"] == "active"
    assert job["data"] == {"to": "a@b.c"}
    assert "metadata" not in job
    assert set(JOB_WIRE_FIELDS) - {"metadata"} <= set(job)
    assert isinstance(job["lease_token"], str) and job["lease_token"]
    assert job["created_at"].endswith("Z") and job["started_at"].endswith("Z")
    assert job["custom_id"] is None and job["result"] is None
    assert await conn.call({"cmd": "ack", "id": job_id, "result": {"sent": True}}) == {"ok": True}
    got = await conn.call({"cmd": "get", "id": job_id})
    assert got["job"]["state"] == "completed"
    assert got["job"]["result"] == {"sent": True}
    assert "lease_token" not in got["job"]


async def test_push_defaults_data_to_empty_object(conn: Any) -> None:
    job_id = await push(conn)
    assert (await conn.call({"cmd": "get", "id": job_id}))["job"]["data"] == {}


async def test_push_reads_nested_options(conn: Any) -> None:
    job_id = await push(conn, options={"priority": 7, "max_attempts": 5, "tags": ["a"], "metadata": {"k": 1}})
    job = (await conn.call({"cmd": "get", "id": job_id}))["job"]
    assert (job["priority"], job["max_attempts"], job["tags"], job["metadata"]) == (7, 5, ["a"], {"k": 1})


async def test_push_reads_top_level_options_only_with_a_trigger_key(conn: Any) -> None:
    with_trigger = await push(conn, priority=3, remove_on_complete=True, custom_id="c1")
    job = (await conn.call({"cmd": "get", "id": with_trigger}))["job"]
    assert (job["priority"], job["remove_on_complete"], job["custom_id"]) == (3, True, "c1")
    # Without a trigger key the top level is not read (what the original does with the benchmark).
    without = await push(conn, remove_on_complete=True)
    assert (await conn.call({"cmd": "get", "id": without}))["job"]["remove_on_complete"] is False


async def test_push_ignores_options_that_do_not_deserialize(conn: Any) -> None:
    job_id = await push(conn, options={"priority": "high", "max_attempts": -1})
    job = (await conn.call({"cmd": "get", "id": job_id}))["job"]
    assert (job["priority"], job["max_attempts"]) == (0, 3)


async def test_push_errors(conn: Any) -> None:
    assert_error(await conn.call({"cmd": "push", "name": "j"}), "VALIDATION_ERROR", "Missing 'queue' field")
    assert_error(await conn.call({"cmd": "push", "queue": "q"}), "VALIDATION_ERROR", "Missing 'name' field")
    answer = await conn.call({"cmd": "push", "queue": "bad queue!", "name": "j"})
    assert_error(answer, "VALIDATION_ERROR")
    assert answer["error"]["message"].startswith("Validation error: Queue name must be non-empty")


async def test_push_batch_and_its_errors(conn: Any) -> None:
    answer = await conn.call(
        {
            "cmd": "push_batch",
            "queue": "b",
            "jobs": [{"name": "a"}, {"name": "b", "data": [1], "priority": 9}],
        }
    )
    assert answer["ok"] is True and len(answer["ids"]) == 2
    second = (await conn.call({"cmd": "get", "id": answer["ids"][1]}))["job"]
    assert (second["data"], second["priority"], second["name"]) == ([1], 9, "b")
    assert_error(
        await conn.call({"cmd": "push_batch", "queue": "b"}),
        "VALIDATION_ERROR",
        "Missing or invalid 'jobs' field",
    )
    assert_error(
        await conn.call({"cmd": "push_batch", "queue": "b", "jobs": [{"name": "a"}, 3]}),
        "VALIDATION_ERROR",
        "jobs[1] must be an object",
    )
    assert_error(
        await conn.call({"cmd": "push_batch", "queue": "b", "jobs": [{"data": 1}]}),
        "VALIDATION_ERROR",
        "jobs[0] missing 'name' field",
    )
    assert (await conn.call({"cmd": "push_batch", "queue": "b", "jobs": []})) == {"ok": True, "ids": []}


async def test_pull_shapes_and_count_coercion(conn: Any) -> None:
    assert await conn.call({"cmd": "pull", "queue": "empty"}) == {"ok": True, "job": None}
    assert await conn.call({"cmd": "pull", "queue": "empty", "count": 5}) == {"ok": True, "jobs": []}
    assert await conn.call({"cmd": "pull", "queue": "empty", "count": 0}) == {"ok": True, "jobs": []}
    for _ in range(4):
        await push(conn)
    # Not an unsigned integer → 1; above u32 → truncated (2**32 + 1 → 1).
    assert "job" in await conn.call({"cmd": "pull", "queue": "q", "count": "3"})
    assert "job" in await conn.call({"cmd": "pull", "queue": "q", "count": 2**32 + 1})
    many = await conn.call({"cmd": "pull", "queue": "q", "count": 10})
    assert len(many["jobs"]) == 2


async def test_pull_with_wait_ms_wakes_on_push(connect: Any) -> None:
    waiter, pusher = await connect(), await connect()
    await waiter.send({"cmd": "pull", "queue": "lp", "wait_ms": 5000, "consumer_id": "c1", "lease_ms": 60000})
    await asyncio.sleep(0.1)
    job_id = await push(pusher, "lp")
    answer = await waiter.recv()
    assert answer["job"]["id"] == job_id
    assert answer["job"]["worker_id"] == "c1"
    assert answer["job"]["lease_ms"] == 60000


async def test_ack_errors(conn: Any) -> None:
    assert_error(await conn.call({"cmd": "ack"}), "VALIDATION_ERROR", "Missing 'id' field")
    assert_error(await conn.call({"cmd": "ack", "id": "nope"}), "VALIDATION_ERROR", "Invalid job ID format")
    assert_error(await conn.call({"cmd": "ack", "id": MISSING_ID}), "JOB_NOT_FOUND", f"Job '{MISSING_ID}' not found")
    waiting = await push(conn)
    assert_error(
        await conn.call({"cmd": "ack", "id": waiting}),
        "INVALID_STATE",
        "Job is in invalid state 'Waiting' for operation (expected: Active)",
    )


async def test_lease_token_fences_ack(conn: Any) -> None:
    await push(conn)
    job = await pull_one(conn)
    assert_error(await conn.call({"cmd": "ack", "id": job["id"], "lease_token": "stale"}), "LEASE_LOST")
    assert await conn.call({"cmd": "ack", "id": job["id"], "lease_token": job["lease_token"]}) == {"ok": True}


async def test_ack_batch_items_and_ids(conn: Any) -> None:
    for _ in range(3):
        await push(conn)
    jobs = (await conn.call({"cmd": "pull", "queue": "q", "count": 3}))["jobs"]
    answer = await conn.call({"cmd": "ack_batch", "items": [{"id": jobs[0]["id"], "result": 1}, {"id": MISSING_ID}]})
    assert (answer["ok"], answer["acked"], answer["failed"]) == (False, 1, 1)
    assert answer["results"][0] == {"id": jobs[0]["id"], "ok": True}
    assert answer["results"][1]["error"]["code"] == "JOB_NOT_FOUND"
    answer = await conn.call({"cmd": "ack_batch", "ids": [jobs[1]["id"], jobs[2]["id"]]})
    assert (answer["ok"], answer["acked"], answer["failed"]) == (True, 2, 0)


async def test_ack_batch_validation_messages(conn: Any) -> None:
    cases = [
        ({"cmd": "ack_batch"}, "Missing 'items' or 'ids' field for ack_batch"),
        ({"cmd": "ack_batch", "items": [1]}, "items[0] must be an object"),
        ({"cmd": "ack_batch", "items": [{"result": 1}]}, "items[0] missing 'id' field"),
        ({"cmd": "ack_batch", "items": [{"id": "x"}]}, "items[0] has invalid job ID format"),
        ({"cmd": "ack_batch", "ids": [MISSING_ID, 5]}, "ids[1] must be a string"),
        ({"cmd": "ack_batch", "ids": ["x"]}, "ids[0] has invalid job ID format"),
    ]
    for command, message in cases:
        assert_error(await conn.call(command), "VALIDATION_ERROR", message)


async def test_fail_retry_then_dlq(conn: Any) -> None:
    await push(conn, options={"max_attempts": 2})
    job = await pull_one(conn)
    answer = await conn.call({"cmd": "fail", "id": job["id"]})
    assert answer["ok"] is True and answer["will_retry"] is True
    assert answer["next_attempt_at"].endswith("+00:00")
    stored = (await conn.call({"cmd": "get", "id": job["id"]}))["job"]
    assert (stored["state"], stored["attempt"], stored["last_error"]) == ("delayed", 1, "unknown error")
    await push(conn, "once", options={"max_attempts": 1})
    once = await pull_one(conn, "once")
    answer = await conn.call({"cmd": "fail", "id": once["id"], "error": "boom"})
    assert (answer["will_retry"], answer["next_attempt_at"]) == (False, None)
    assert "next_attempt_at" in answer
    dlq = await conn.call({"cmd": "dlq", "queue": "once"})
    assert [j["id"] for j in dlq["jobs"]] == [once["id"]]


async def test_cancel_progress_heartbeat(conn: Any) -> None:
    waiting = await push(conn, "c")
    assert await conn.call({"cmd": "cancel", "id": waiting}) == {"ok": True}
    assert (await conn.call({"cmd": "get", "id": waiting}))["job"]["state"] == "cancelled"
    await push(conn, "c")
    job = await pull_one(conn, "c")
    assert await conn.call({"cmd": "progress", "id": job["id"], "progress": 300, "message": "m"}) == {"ok": True}
    stored = (await conn.call({"cmd": "get", "id": job["id"]}))["job"]
    assert stored["progress"] == 44  # 300 truncated to 8 bits
    assert stored["logs"][-1]["message"] == "m"
    assert await conn.call({"cmd": "progress", "id": job["id"], "progress": 150}) == {"ok": True}
    assert (await conn.call({"cmd": "get", "id": job["id"]}))["job"]["progress"] == 100
    assert_error(await conn.call({"cmd": "progress", "id": job["id"]}), "VALIDATION_ERROR", "Missing 'progress' field")
    assert await conn.call({"cmd": "heartbeat", "id": job["id"]}) == {"ok": True}
    assert (await conn.call({"cmd": "get", "id": job["id"]}))["job"]["last_heartbeat"] is not None
    assert_error(await conn.call({"cmd": "heartbeat", "id": waiting}), "INVALID_STATE")


async def test_stats_and_list_queues(conn: Any) -> None:
    await push(conn, "s1")
    await push(conn, "s2")
    answer = await conn.call({"cmd": "stats", "queue": "s1"})
    assert answer["ok"] is True
    assert answer["counts"] == {
        "waiting": 1,
        "active": 0,
        "delayed": 0,
        "completed": 0,
        "failed": 0,
        "dlq": 0,
        "blocked": 0,
    }
    queues = (await conn.call({"cmd": "list_queues"}))["queues"]
    assert [q["name"] for q in queues] == ["s1", "s2"]
    assert_error(await conn.call({"cmd": "stats"}), "VALIDATION_ERROR", "Missing 'queue' field")


async def test_get_returns_null_for_unknown_job(conn: Any) -> None:
    assert await conn.call({"cmd": "get", "id": MISSING_ID}) == {"ok": True, "job": None}


async def test_release_nack_renew(conn: Any) -> None:
    for _ in range(2):
        await push(conn, "r")
    first = await pull_one(conn, "r")
    assert await conn.call({"cmd": "release", "id": first["id"], "lease_token": first["lease_token"]}) == {"ok": True}
    released = (await conn.call({"cmd": "get", "id": first["id"]}))["job"]
    assert (released["state"], released["attempt"]) == ("waiting", 0)
    job = await pull_one(conn, "r")
    renewed = await conn.call({"cmd": "renew", "id": job["id"], "lease_ms": 120000})
    assert renewed["ok"] is True and renewed["lease_ms"] in (120000, job["lease_ms"])
    answer = await conn.call({"cmd": "nack", "id": job["id"], "reason": "later"})
    assert answer["ok"] is True and answer["will_retry"] is True
    stored = (await conn.call({"cmd": "get", "id": job["id"]}))["job"]
    assert (stored["state"], stored["attempt"], stored["last_error"]) == ("waiting", 1, "later")
    job = await pull_one(conn, "r")
    answer = await conn.call({"cmd": "nack", "id": job["id"], "requeue": False})
    assert answer["will_retry"] is False
    assert (await conn.call({"cmd": "get", "id": job["id"]}))["job"]["state"] == "dlq"


async def test_batched_heartbeat_reports_each_item(conn: Any) -> None:
    await push(conn, "hb")
    job = await pull_one(conn, "hb")
    answer = await conn.call(
        {
            "cmd": "heartbeat",
            "items": [{"id": job["id"], "lease_token": job["lease_token"]}, {"id": MISSING_ID}],
        }
    )
    assert answer["ok"] is True and answer["failed"] == 1
    assert answer["results"][0] == {"id": job["id"], "ok": True}
    assert answer["results"][1]["error"]["code"] == "JOB_NOT_FOUND"


async def test_flow_lists_jobs_of_a_flow(conn: Any) -> None:
    flow_id = str(uuid.uuid4())
    ids = [await push(conn, "f", options={"flow_id": flow_id}) for _ in range(2)]
    answer = await conn.call({"cmd": "flow", "flow_id": flow_id})
    assert answer["ok"] is True and answer["flow_id"] == flow_id
    assert sorted(j["id"] for j in answer["jobs"]) == sorted(ids)
    assert answer["summary"]["total"] == 2


async def test_queue_pause_and_resume(conn: Any) -> None:
    assert await conn.call({"cmd": "queue_pause", "queue": "p"}) == {"ok": True}
    assert_error(await conn.call({"cmd": "push", "queue": "p", "name": "j"}), "QUEUE_PAUSED", "Queue 'p' is paused")
    assert await conn.call({"cmd": "queue_resume", "queue": "p"}) == {"ok": True}
    await push(conn, "p")


async def test_schedule_commands(conn: Any) -> None:
    create = {
        "cmd": "schedule_create",
        "name": "nightly",
        "queue": "s",
        "job_name": "report",
        "every_ms": 60000,
    }
    assert await conn.call(create) == {"ok": True}
    schedules = (await conn.call({"cmd": "schedule_list"}))["schedules"]
    assert [s["name"] for s in schedules] == ["nightly"]
    schedule = (await conn.call({"cmd": "schedule_get", "name": "nightly"}))["schedule"]
    assert (schedule["job_data"], schedule["every_ms"], schedule["paused"]) == ({}, 60000, False)
    assert schedule["created_at"].endswith("Z")
    assert await conn.call({"cmd": "schedule_pause", "name": "nightly"}) == {"ok": True}
    assert (await conn.call({"cmd": "schedule_get", "name": "nightly"}))["schedule"]["paused"] is True
    assert await conn.call({"cmd": "schedule_resume", "name": "nightly"}) == {"ok": True}
    assert await conn.call({"cmd": "schedule_delete", "name": "nightly"}) == {"ok": True}
    assert await conn.call({"cmd": "schedule_delete", "name": "nightly"}) == {"ok": True}
    assert_error(
        await conn.call({"cmd": "schedule_get", "name": "nightly"}),
        "NOT_FOUND",
        "Schedule 'nightly' not found",
    )
    assert_error(
        await conn.call({"cmd": "schedule_pause", "name": "nightly"}),
        "SCHEDULE_NOT_FOUND",
        "Schedule not found: nightly",
    )
    answer = await conn.call({"cmd": "schedule_create", "name": "x", "queue": "s", "job_name": "j"})
    assert_error(answer, "VALIDATION_ERROR", "Validation error: Schedule must have cron_expr or every_ms")
    assert_error(await conn.call({"cmd": "schedule_create", "name": "x"}), "VALIDATION_ERROR", "Missing 'queue' field")


async def test_health(conn: Any) -> None:
    answer = await conn.call({"cmd": "health"})
    assert answer["ok"] is True and answer["status"] == "healthy"


async def test_request_errors(conn: Any) -> None:
    await conn.send_raw(b"not json\n")
    assert (await conn.recv())["error"]["code"] == "PARSE_ERROR"
    await conn.send_raw(b"\n")
    assert_error(await conn.recv(), "PARSE_ERROR", "Invalid JSON: EOF while parsing a value at line 1 column 0")
    assert_error(await conn.call({"queue": "q"}), "VALIDATION_ERROR", "Missing or invalid 'cmd' field")
    assert_error(await conn.call({"cmd": 5}), "VALIDATION_ERROR", "Missing or invalid 'cmd' field")
    assert_error(await conn.call([1, 2]), "VALIDATION_ERROR", "Missing or invalid 'cmd' field")
    assert_error(await conn.call({"cmd": "frobnicate"}), "UNKNOWN_COMMAND", "Unknown command: frobnicate")
    # The connection survives every error.
    await push(conn)


async def test_auth_is_a_no_op_success_when_auth_is_off(conn: Any) -> None:
    assert await conn.call({"cmd": "auth", "token": "anything"}) == {"ok": True}
    await push(conn)
