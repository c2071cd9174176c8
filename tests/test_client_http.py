"""The HTTP clients (sync keep-alive and async) against ``rustqueue serve`` in a subprocess."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from rustqueue_core.client import AsyncRustQueueClient, RustQueueClient, RustQueueConnectionError
from rustqueue_core.errors import InvalidState, JobNotFound, ValidationError
from rustqueue_core.testing.server import ServerProcess

MISSING_ID = "00000000-0000-7000-8000-000000000000"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """``rustqueue serve`` in a subprocess on free ports: yields (http_port, tcp_port)."""
    with ServerProcess(["--plugins=tcp,http"], cwd=tmp_path_factory.mktemp("server")) as server:
        yield server.http_port, server.tcp_port


@pytest.fixture
def client(live_server: tuple[int, int]) -> Iterator[RustQueueClient]:
    with RustQueueClient(f"http://127.0.0.1:{live_server[0]}") as c:
        yield c


def test_job_lifecycle_like_the_original_sdk(client: RustQueueClient) -> None:
    job_id = client.push("h1", "send", {"to": "x"}, priority=4, tags=["t"], max_attempts=2)
    ids = client.push_batch("h1", [{"name": "a", "data": {}}, {"name": "b", "data": None, "priority": 9}])
    assert len(ids) == 2
    jobs = client.pull("h1", 3)
    assert [j["id"] for j in jobs] == [ids[1], job_id, ids[0]]
    assert all(j["lease_token"] for j in jobs)
    client.ack(jobs[0]["id"], {"ok": 1})
    assert client.fail(jobs[1]["id"], "bad")["retry"] is True
    client.progress(jobs[2]["id"], 40, "forty")
    client.heartbeat(jobs[2]["id"])
    client.ack(jobs[2]["id"])
    stored = client.get_job(jobs[0]["id"])
    assert stored is not None and (stored["state"], stored["result"]) == ("completed", {"ok": 1})
    assert client.get_job(MISSING_ID) is None
    assert client.pull("h1") == []
    counts = client.get_queue_stats("h1")
    assert (counts["completed"], counts["delayed"]) == (2, 1)
    assert "h1" in [q["name"] for q in client.list_queues()]


def test_cancel_dlq_and_batch_ack(client: RustQueueClient) -> None:
    waiting = client.push("h2", "c")
    client.cancel(waiting)
    assert client.get_job(waiting)["state"] == "cancelled"  # type: ignore[index]
    client.push("h2", "d", max_attempts=1)
    (job,) = client.pull("h2")
    client.fail(job["id"], "x", lease_token=job["lease_token"])
    assert [j["id"] for j in client.get_dlq_jobs("h2")] == [job["id"]]
    client.push_batch("h2", [{"name": "e"}, {"name": "f"}])
    pulled = client.pull("h2", 2)
    result = client.ack_batch([p["id"] for p in pulled] + [MISSING_ID])
    assert (result["acked"], result["failed"]) == (2, 1)


def test_errors_are_typed(client: RustQueueClient) -> None:
    with pytest.raises(JobNotFound):
        client.ack(MISSING_ID)
    with pytest.raises(InvalidState):
        client.ack(client.push("h3", "j"))
    with pytest.raises(ValidationError):
        client.push("bad queue", "j")


def test_schedules(client: RustQueueClient) -> None:
    created = client.create_schedule({"name": "hs", "queue": "q", "job_name": "t", "every_ms": 60000})
    assert created["name"] == "hs" and created["execution_count"] == 0
    client.pause_schedule("hs")
    assert client.get_schedule("hs")["paused"] is True  # type: ignore[index]
    client.resume_schedule("hs")
    assert "hs" in [s["name"] for s in client.list_schedules()]
    client.delete_schedule("hs")
    assert client.get_schedule("hs") is None


def test_keep_alive_reuses_one_connection(client: RustQueueClient) -> None:
    for _ in range(20):
        assert client.health()["status"] == "healthy"
    assert len(client._connections) == 1


def test_unreachable_server_raises_a_connection_error() -> None:
    with pytest.raises(RustQueueConnectionError), RustQueueClient("http://127.0.0.1:1", timeout=2) as c:
        c.health()


async def test_async_client_runs_requests_concurrently(live_server: tuple[int, int]) -> None:
    async with AsyncRustQueueClient(f"http://127.0.0.1:{live_server[0]}") as client:
        ids = await asyncio.wait_for(asyncio.gather(*[client.push("ha", "j", {"i": i}) for i in range(40)]), 30)
        assert len(set(ids)) == 40
        jobs = await client.pull("ha", 40)
        result = await client.ack_batch([j["id"] for j in jobs])
        assert result["acked"] == 40
        assert (await client.get_queue_stats("ha"))["completed"] == 40
        with pytest.raises(JobNotFound):
            await client.cancel(MISSING_ID)
