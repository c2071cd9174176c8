"""Black-box compatibility with the RustQueue 0.3 TCP clients (Node ``RustQueueTcpClient``, Go ``TcpClient``)
and the original's TCP integration tests, over a real ``rustqueue serve``.

Each command is sent exactly as those clients serialize it (one JSON object per line), and each answer is
read the way they read it: FIFO matching, ``ok`` false means ``error.code``/``error.message``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rustqueue_core.testing.server import ServerProcess

TIMEOUT = 10.0
MISSING_ID = "00000000-0000-7000-8000-000000000000"
COUNT_KEYS = {"waiting", "active", "delayed", "completed", "failed", "dlq", "blocked"}


class LineClient:
    """A newline-delimited JSON connection, as the SDKs' TCP clients open it."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.reader = self.sock.makefile("rb")

    def send(self, command: dict[str, Any]) -> dict[str, Any]:
        self.sock.sendall(json.dumps(command).encode() + b"\n")
        line = self.reader.readline()
        assert line.endswith(b"\n"), f"connection closed after {command}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def error_of(answer: dict[str, Any]) -> tuple[str, str]:
    assert answer["ok"] is False and set(answer["error"]) == {"code", "message"}, answer
    return answer["error"]["code"], answer["error"]["message"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("tcp-sdk-compat")
    with ServerProcess(["--plugins=http,tcp"], storage=f"sqlite:///{workdir}/jobs.db", cwd=workdir) as running:
        yield running


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[LineClient]:
    client = LineClient(server.tcp_address)
    try:
        yield client
    finally:
        client.close()


def push_and_pull(conn: LineClient, queue: str, **options: Any) -> str:
    command: dict[str, Any] = {"cmd": "push", "queue": queue, "name": "task", "data": {}}
    if options:
        command["options"] = options
    job_id: str = conn.send(command)["id"]
    assert conn.send({"cmd": "pull", "queue": queue, "count": 1})["job"]["id"] == job_id
    return job_id


def test_auth_with_auth_off_is_a_no_op_success(conn: LineClient) -> None:
    # The Node and Go clients send auth first whenever a token is configured.
    assert conn.send({"cmd": "auth", "token": "any-token"}) == {"ok": True}
    assert conn.send({"cmd": "stats", "queue": "tcp-auth-off"})["ok"] is True


def test_push_get_and_pull_shapes(conn: LineClient) -> None:
    queue = "tcp-shapes"
    first = conn.send({"cmd": "push", "queue": queue, "name": "j", "data": {"a": 1},
                       "options": {"priority": 7, "max_attempts": 2}})  # fmt: skip
    assert first["ok"] is True
    job = conn.send({"cmd": "get", "id": first["id"]})["job"]
    assert (job["priority"], job["max_attempts"], job["data"]) == (7, 2, {"a": 1})
    assert conn.send({"cmd": "get", "id": MISSING_ID}) == {"ok": True, "job": None}
    jobs = [{"name": "a", "data": {}}, {"name": "b", "data": {}, "options": {"priority": 1}}]
    batch = conn.send({"cmd": "push_batch", "queue": queue, "jobs": jobs})
    assert batch["ok"] is True and len(batch["ids"]) == 2
    # Node sends count only when given, Go whenever > 0: no count or 1 → "job", else "jobs".
    assert set(conn.send({"cmd": "pull", "queue": queue})) == {"ok", "job"}
    assert set(conn.send({"cmd": "pull", "queue": queue, "count": 1})) == {"ok", "job"}
    assert conn.send({"cmd": "pull", "queue": queue, "count": 0}) == {"ok": True, "jobs": []}
    many = conn.send({"cmd": "pull", "queue": queue, "count": 5})
    assert set(many) == {"ok", "jobs"} and len(many["jobs"]) == 1
    assert conn.send({"cmd": "pull", "queue": queue}) == {"ok": True, "job": None}


def test_fail_answers_will_retry_and_next_attempt_at(conn: LineClient) -> None:
    retried = conn.send({"cmd": "fail", "id": push_and_pull(conn, "tcp-fail", max_attempts=3), "error": "e"})
    assert retried["ok"] is True and retried["will_retry"] is True and "retry" not in retried
    assert retried["next_attempt_at"].endswith("+00:00")
    dead = conn.send({"cmd": "fail", "id": push_and_pull(conn, "tcp-fail", max_attempts=1), "error": "e"})
    assert dead["will_retry"] is False and "next_attempt_at" in dead and dead["next_attempt_at"] is None


def test_ack_and_ack_batch_as_the_clients_send_them(conn: LineClient) -> None:
    first = push_and_pull(conn, "tcp-ack")
    assert conn.send({"cmd": "ack", "id": first, "result": {"done": True}}) == {"ok": True}
    second = push_and_pull(conn, "tcp-ack")
    answer = conn.send({"cmd": "ack_batch", "items": [{"id": second, "result": {"x": 1}}, {"id": MISSING_ID}]})
    assert (answer["ok"], answer["acked"], answer["failed"]) == (False, 1, 1)
    assert answer["results"][0] == {"id": second, "ok": True}
    assert answer["results"][1]["error"]["code"] == "JOB_NOT_FOUND"
    assert error_of(conn.send({"cmd": "ack", "id": first})) == (
        "INVALID_STATE", "Job is in invalid state 'Completed' for operation (expected: Active)",
    )  # fmt: skip


def test_progress_coercions_heartbeat_cancel_and_stats(conn: LineClient) -> None:
    job_id = push_and_pull(conn, "tcp-progress")
    for sent, stored in ((50, 50), (256, 0), (300, 44), (150, 100)):
        assert conn.send({"cmd": "progress", "id": job_id, "progress": sent}) == {"ok": True}
        assert conn.send({"cmd": "get", "id": job_id})["job"]["progress"] == stored, sent
    assert conn.send({"cmd": "progress", "id": job_id, "progress": 5, "message": "m"}) == {"ok": True}
    assert error_of(conn.send({"cmd": "progress", "id": job_id})) == ("VALIDATION_ERROR", "Missing 'progress' field")
    assert conn.send({"cmd": "heartbeat", "id": job_id}) == {"ok": True}
    waiting = conn.send({"cmd": "push", "queue": "tcp-progress", "name": "j", "data": {}})["id"]
    assert conn.send({"cmd": "cancel", "id": waiting}) == {"ok": True}
    counts = conn.send({"cmd": "stats", "queue": "tcp-progress"})["counts"]
    assert set(counts) == COUNT_KEYS and counts["active"] == 1


def test_schedule_commands(conn: LineClient) -> None:
    # Node's createSchedule drops undefined fields; job_data defaults to {}. No schedule is echoed.
    create = {"cmd": "schedule_create", "name": "tcp-sched", "queue": "tcp-q", "job_name": "tick", "job_data": {},
              "cron_expr": "0 * * * *"}  # fmt: skip
    assert conn.send(create) == {"ok": True}
    assert conn.send({"cmd": "schedule_get", "name": "tcp-sched"})["schedule"]["job_data"] == {}
    assert "tcp-sched" in {s["name"] for s in conn.send({"cmd": "schedule_list"})["schedules"]}
    assert conn.send({"cmd": "schedule_pause", "name": "tcp-sched"}) == {"ok": True}
    assert conn.send({"cmd": "schedule_resume", "name": "tcp-sched"}) == {"ok": True}
    assert conn.send({"cmd": "schedule_delete", "name": "tcp-sched"}) == {"ok": True}
    assert conn.send({"cmd": "schedule_delete", "name": "tcp-sched"}) == {"ok": True}
    # The clients map NOT_FOUND (TCP schedule_get only) to null.
    assert error_of(conn.send({"cmd": "schedule_get", "name": "tcp-sched"})) == (
        "NOT_FOUND", "Schedule 'tcp-sched' not found",
    )  # fmt: skip
    assert error_of(conn.send({"cmd": "schedule_pause", "name": "tcp-sched"}))[0] == "SCHEDULE_NOT_FOUND"


def test_protocol_errors(conn: LineClient) -> None:
    assert error_of(conn.send({"cmd": "invalid"})) == ("UNKNOWN_COMMAND", "Unknown command: invalid")
    assert error_of(conn.send({"queue": "x"})) == ("VALIDATION_ERROR", "Missing or invalid 'cmd' field")
    assert error_of(conn.send({"cmd": "ack", "id": "zz"})) == ("VALIDATION_ERROR", "Invalid job ID format")
    conn.sock.sendall(b"not json\n")
    assert error_of(json.loads(conn.reader.readline()))[0] == "PARSE_ERROR"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("tcp-sdk-compat-auth")
    config = workdir / "rustqueue.toml"
    config.write_text('[auth]\nenabled = true\ntokens = ["my-secret-token-abc"]\n')
    with ServerProcess(["--plugins=http,tcp,auth", "--config", str(config)], cwd=workdir) as running:
        yield running


def test_auth_flow_with_auth_on(auth_server: ServerProcess) -> None:
    conn = LineClient(auth_server.tcp_address)
    try:
        code, message = error_of(conn.send({"cmd": "push", "queue": "q", "name": "j", "data": {}}))
        assert code == "UNAUTHORIZED" and "Authentication required" in message
        assert error_of(conn.send({"cmd": "auth", "token": "wrong-token"}))[0] == "UNAUTHORIZED"
        assert error_of(conn.send({"cmd": "stats", "queue": "q"}))[0] == "UNAUTHORIZED"
        assert conn.send({"cmd": "auth", "token": "my-secret-token-abc"}) == {"ok": True}
        # A client that reconnects re-sends auth on an authenticated connection.
        assert conn.send({"cmd": "auth", "token": "my-secret-token-abc"}) == {"ok": True}
        job_id = conn.send({"cmd": "push", "queue": "auth-q", "name": "auth-job", "data": {"x": 1}})["id"]
        assert conn.send({"cmd": "pull", "queue": "auth-q"})["job"]["id"] == job_id
        assert conn.send({"cmd": "ack", "id": job_id}) == {"ok": True}
    finally:
        conn.close()
