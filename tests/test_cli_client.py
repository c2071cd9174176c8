"""The client subcommands (status, push, inspect, schedules) against ``rustqueue serve`` in a subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rustqueue_core.cli import main
from rustqueue_core.testing.server import ServerProcess, free_port

TOKEN = "cli-token-1"


def _serve(workdir: Path, *extra: str) -> Iterator[int]:
    """``rustqueue serve`` on free ports; yields the HTTP port, stops the server afterwards."""
    with ServerProcess(list(extra), cwd=workdir) as server:
        yield server.http_port


@pytest.fixture(scope="module")
def http_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    yield from _serve(tmp_path_factory.mktemp("open"), "--plugins=tcp,http")


@pytest.fixture(scope="module")
def auth_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("conf") / "rustqueue.toml"
    path.write_text(f'[auth]\nenabled = true\ntokens = ["{TOKEN}", "other"]\n')
    return path


@pytest.fixture(scope="module")
def auth_port(tmp_path_factory: pytest.TempPathFactory, auth_config: Path) -> Iterator[int]:
    yield from _serve(tmp_path_factory.mktemp("auth"), "--plugins=tcp,http,auth", "--config", str(auth_config))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RUSTQUEUE_HOST", "RUSTQUEUE_HTTP_PORT", "RUSTQUEUE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray rustqueue.toml


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_push_inspect(http_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    port = str(http_port)
    code, out, _ = run(capsys, "status", "--http-port", port)
    assert (code, out) == (0, "No queues found.\n")
    code, out, _ = run(
        capsys, "push", "--queue", "emails", "--name", "welcome", "--data", '{"to":"a"}', "--http-port", port
    )
    assert code == 0 and out.startswith("Job pushed: ")
    job_id = out.split(": ", 1)[1].strip()
    run(capsys, "push", "--queue", "emails", "--name", "bad-data", "--data", "{not json", "--http-port", port)
    code, out, _ = run(capsys, "status", "--http-port", port)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["Queue", "Waiting", "Active", "Delayed", "Done", "Failed", "DLQ"]
    assert row.split() == ["emails", "2", "0", "0", "0", "0", "0"]
    code, out, _ = run(capsys, "inspect", job_id, "--http-port", port)
    job = json.loads(out)
    assert code == 0 and (job["id"], job["data"], job["state"]) == (job_id, {"to": "a"}, "waiting")


def test_json_output_and_environment(
    http_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUSTQUEUE_HOST", "127.0.0.1")
    monkeypatch.setenv("RUSTQUEUE_HTTP_PORT", str(http_port))
    code, out, _ = run(capsys, "push", "--queue", "envq", "--name", "j", "--json")
    assert code == 0 and len(json.loads(out)["id"]) == 36
    code, out, _ = run(capsys, "status", "--json")
    queues = {q["name"]: q["counts"] for q in json.loads(out)}
    assert queues["envq"]["waiting"] == 1


def test_errors_print_the_error_json(http_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "00000000-0000-7000-8000-000000000000", "--http-port", str(http_port))
    assert code == 1 and out == ""
    assert err.startswith("Error: ")
    body = json.loads(err.removeprefix("Error: "))
    assert body["error"]["code"] == "JOB_NOT_FOUND"
    code, _, err = run(capsys, "status", "--http-port", str(free_port()))
    assert code == 1 and err.startswith("Error: ")


def test_schedules(http_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    port = str(http_port)
    code, out, _ = run(capsys, "schedules", "--http-port", port, "list")
    assert (code, out) == (0, "No schedules found.\n")
    code, out, _ = run(
        capsys,
        "schedules",
        "--http-port",
        port,
        "create",
        "--name",
        "nightly",
        "--queue",
        "reports",
        "--job-name",
        "build",
        "--cron",
        "0 3 * * *",
        "--data",
        '{"k":1}',
    )
    assert (code, out) == (0, "Schedule created: nightly\n")
    code, out, _ = run(capsys, "schedules", "--http-port", port, "list")
    assert code == 0 and "nightly" in out and "reports" in out
    assert run(capsys, "schedules", "--http-port", port, "pause", "nightly")[1] == "Schedule paused: nightly\n"
    code, out, _ = run(capsys, "schedules", "--http-port", port, "list", "--json")
    (schedule,) = json.loads(out)
    assert (schedule["paused"], schedule["job_data"]) == (True, {"k": 1})
    assert run(capsys, "schedules", "--http-port", port, "resume", "nightly")[1] == "Schedule resumed: nightly\n"
    assert run(capsys, "schedules", "--http-port", port, "delete", "nightly")[1] == "Schedule deleted: nightly\n"
    code, _, err = run(capsys, "schedules", "--http-port", port, "pause", "nightly")
    assert code == 1 and json.loads(err.removeprefix("Error: "))["error"]["code"] == "SCHEDULE_NOT_FOUND"
    code, _, err = run(
        capsys, "schedules", "--http-port", port, "create", "--name", "x", "--queue", "q", "--job-name", "j"
    )
    assert code == 1 and "cron_expr or every_ms" in err


def test_token_from_flag_env_or_config(
    auth_port: int, auth_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = str(auth_port)
    code, _, err = run(capsys, "status", "--http-port", port)
    assert code == 1 and json.loads(err.removeprefix("Error: "))["error"]["code"] == "UNAUTHORIZED"
    assert run(capsys, "status", "--http-port", port, "--token", TOKEN)[0] == 0
    assert run(capsys, "status", "--http-port", port, "-c", str(auth_config))[0] == 0
    monkeypatch.setenv("RUSTQUEUE_TOKEN", "other")
    code, out, _ = run(capsys, "push", "--queue", "a", "--name", "j", "--http-port", port)
    assert code == 0 and out.startswith("Job pushed: ")
