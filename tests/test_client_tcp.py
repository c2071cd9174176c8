"""The TCP clients (async pipelining and blocking) against a real TCP server over a real engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from rustqueue_auth.plugin import AuthPlugin
from rustqueue_auth.tokens import AuthConfig
from rustqueue_tcp.server import TcpServer

from rustqueue_core.client import AsyncTcpClient, RustQueueConnectionError, TcpClient, parse_tcp_url
from rustqueue_core.errors import InvalidState, JobNotFound, QueuePaused, Unauthorized, ValidationError
from rustqueue_core.plugins import PluginHost

MISSING_ID = "00000000-0000-7000-8000-000000000000"


@pytest_asyncio.fixture
async def server(engine_factory: Any) -> AsyncIterator[TcpServer]:
    engine = await engine_factory()
    async with TcpServer(engine, "127.0.0.1", 0) as srv:
        yield srv


@pytest_asyncio.fixture
async def client(server: TcpServer) -> AsyncIterator[AsyncTcpClient]:
    async with AsyncTcpClient("127.0.0.1", server.bound_port) as c:
        yield c


async def test_pipelined_pushes_share_one_connection(client: AsyncTcpClient) -> None:
    ids = await asyncio.wait_for(
        asyncio.gather(*[client.push("p", "job", {"i": i}, priority=i % 3) for i in range(500)]), 30
    )
    assert len(set(ids)) == 500
    stats = await client.get_queue_stats("p")
    assert stats["waiting"] == 500
    job = await client.get_job(ids[7])
    assert (job["data"], job["priority"]) == ({"i": 7}, 7 % 3)


async def test_batch_push_pull_and_ack(client: AsyncTcpClient) -> None:
    ids = await client.push_batch("b", [{"name": "a", "data": 1}, {"name": "b", "options": {"priority": 5}}])
    jobs = await client.pull("b", 5, consumer_id="w1", lease_ms=30000)
    assert [j["id"] for j in jobs] == [ids[1], ids[0]]  # priority first
    assert all(j["lease_token"] for j in jobs)
    result = await client.ack_batch([(jobs[0]["id"], "done"), {"id": MISSING_ID}])
    assert (result["acked"], result["failed"], result["ok"]) == (1, 1, False)
    await client.ack(jobs[1]["id"], lease_token=jobs[1]["lease_token"])
    assert (await client.get_job(jobs[0]["id"]))["result"] == "done"
    assert await client.pull("b") == []


async def test_errors_are_typed(client: AsyncTcpClient) -> None:
    with pytest.raises(JobNotFound) as not_found:
        await client.ack(MISSING_ID)
    assert not_found.value.code == "JOB_NOT_FOUND"
    with pytest.raises(ValidationError, match="Invalid job ID format"):
        await client.cancel("not-a-uuid")
    job_id = await client.push("e", "j")
    with pytest.raises(InvalidState):
        await client.heartbeat(job_id)
    await client.pause_queue("e")
    with pytest.raises(QueuePaused):
        await client.push("e", "j")
    await client.resume_queue("e")
    assert await client.get_job(MISSING_ID) is None
    # The connection survived every error.
    assert (await client.health())["status"] == "healthy"


async def test_fail_nack_release_progress_renew(client: AsyncTcpClient) -> None:
    await client.push_batch("f", [{"name": "a", "max_attempts": 1}, {"name": "b"}, {"name": "c"}])
    first, second, third = await client.pull("f", 3)
    answer = await client.fail(first["id"], "boom", lease_token=first["lease_token"])
    assert answer == {"will_retry": False, "next_attempt_at": None, "state": "dlq"}
    assert [j["id"] for j in await client.get_dlq_jobs("f")] == [first["id"]]
    await client.progress(second["id"], 50, "half", lease_token=second["lease_token"])
    renewed = await client.renew(second["id"], 90000, lease_token=second["lease_token"])
    assert renewed["ok"] is True
    beat = await client.heartbeat([{"id": second["id"], "lease_token": second["lease_token"]}, MISSING_ID])
    assert beat["failed"] == 1
    nacked = await client.nack(second["id"], reason="later")
    assert nacked["will_retry"] is True
    await client.release(third["id"], lease_token=third["lease_token"])
    assert (await client.get_job(third["id"]))["state"] == "waiting"
    assert (await client.get_job(second["id"]))["progress"] == 50


async def test_schedules_and_queues(client: AsyncTcpClient) -> None:
    await client.create_schedule(name="s1", queue="sq", job_name="tick", every_ms=60000)
    assert [s["name"] for s in await client.list_schedules()] == ["s1"]
    await client.pause_schedule("s1")
    assert (await client.get_schedule("s1"))["paused"] is True
    await client.resume_schedule("s1")
    await client.delete_schedule("s1")
    assert await client.get_schedule("s1") is None
    await client.push("zq", "j")
    assert [q["name"] for q in await client.list_queues()] == ["zq"]


async def test_raw_pipeline_returns_answers_in_order(client: AsyncTcpClient) -> None:
    answers = await client.pipeline(
        [{"cmd": "push", "queue": "r", "name": "j"}, {"cmd": "bogus"}, {"cmd": "stats", "queue": "r"}]
    )
    assert answers[0]["ok"] is True
    assert answers[1]["error"]["code"] == "UNKNOWN_COMMAND"
    assert answers[2]["counts"]["waiting"] == 1


async def test_reconnects_after_the_server_restarts(engine_factory: Any) -> None:
    engine = await engine_factory()
    first = TcpServer(engine, "127.0.0.1", 0)
    await first.start()
    port = first.bound_port
    client = AsyncTcpClient("127.0.0.1", port, reconnect_delay=0.05)
    try:
        await client.push("rc", "j")
        await first.stop()
        await asyncio.sleep(0.05)
        async with TcpServer(engine, "127.0.0.1", port):
            await asyncio.wait_for(client.push("rc", "j"), 10)
            assert (await client.get_queue_stats("rc"))["waiting"] == 2
    finally:
        await client.close()


async def test_no_server_raises_a_connection_error() -> None:
    client = AsyncTcpClient("127.0.0.1", 1, auto_reconnect=False)
    with pytest.raises(RustQueueConnectionError):
        await client.connect()
    with pytest.raises(ConnectionError):
        TcpClient("127.0.0.1", 1, auto_reconnect=False).connect()


async def test_token_authentication(engine_factory: Any) -> None:
    host = PluginHost.embedded([AuthPlugin(AuthConfig(enabled=True, tokens=["s3cret"]))])
    engine = await engine_factory(host=host)
    async with TcpServer(engine, "127.0.0.1", 0) as srv:
        async with AsyncTcpClient.from_url(f"tcp://127.0.0.1:{srv.bound_port}?token=s3cret") as client:
            assert await client.push("a", "j")
        with pytest.raises(Unauthorized, match="Invalid authentication token"):
            await AsyncTcpClient("127.0.0.1", srv.bound_port, "wrong", auto_reconnect=False).connect()
        anonymous = AsyncTcpClient("127.0.0.1", srv.bound_port)
        try:
            with pytest.raises(Unauthorized, match="Authentication required"):
                await anonymous.push("a", "j")
        finally:
            await anonymous.close()

        def blocking() -> int:
            with TcpClient("127.0.0.1", srv.bound_port, token="s3cret") as sync_client:
                sync_client.push("a", "j")
                return int(sync_client.get_queue_stats("a")["waiting"])

        assert await asyncio.to_thread(blocking) == 2


async def test_blocking_client(server: TcpServer) -> None:
    def run() -> None:
        with TcpClient("127.0.0.1", server.bound_port) as client:
            answers = client.pipeline([{"cmd": "push", "queue": "s", "name": "j"} for _ in range(200)])
            assert all(a["ok"] for a in answers)
            jobs = client.pull("s", 2)
            assert len(jobs) == 2
            client.ack(jobs[0]["id"], {"r": 1})
            assert client.fail(jobs[1]["id"], "x")["will_retry"] is True
            with pytest.raises(JobNotFound):
                client.ack(MISSING_ID)
            assert client.get_queue_stats("s")["waiting"] == 198

    await asyncio.to_thread(run)


def test_parse_tcp_url() -> None:
    assert parse_tcp_url("tcp://example.org:7000?token=abc") == ("example.org", 7000, "abc")
    assert parse_tcp_url("tcp://localhost") == ("localhost", 6789, None)
    with pytest.raises(ValueError):
        parse_tcp_url("http://localhost")
