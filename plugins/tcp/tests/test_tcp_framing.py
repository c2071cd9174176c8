"""Framing: pipelining, coalesced pushes, partial and oversized lines, disconnects, shutdown."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import msgspec
from rustqueue_tcp.server import TcpServer


def lines(*commands: Any) -> bytes:
    return b"".join(msgspec.json.encode(c) + b"\n" for c in commands)


async def test_thousand_pipelined_requests_answer_in_order(conn: Any, engine: Any) -> None:
    commands = [{"cmd": "push", "queue": "pipe", "name": "j", "data": {"i": i}} for i in range(1000)]
    await conn.send_raw(lines(*commands))
    answers = [await conn.recv() for _ in commands]
    assert all(a["ok"] for a in answers)
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == 1000
    jobs = await engine.get_jobs(ids)
    assert [j.data["i"] for j in jobs] == list(range(1000))


async def test_mixed_pipeline_keeps_order_and_isolates_errors(conn: Any) -> None:
    burst = (
        lines(
            {"cmd": "push", "queue": "m", "name": "a", "options": {"unique_key": "k"}},
            {"cmd": "push", "queue": "m", "name": "b", "options": {"unique_key": "k"}},
            {"cmd": "push", "queue": "bad queue", "name": "c"},
            {"cmd": "stats", "queue": "m"},
            {"cmd": "push", "queue": "m", "name": "d"},
        )
        + b"oops\n"
        + lines({"cmd": "pull", "queue": "m", "count": 5})
    )
    await conn.send_raw(burst)
    answers = [await conn.recv() for _ in range(7)]
    assert answers[0]["ok"] is True
    assert answers[1]["error"]["code"] == "DUPLICATE_KEY"
    assert answers[2]["error"]["code"] == "VALIDATION_ERROR"
    assert answers[2]["error"]["message"].startswith("Validation error: Queue name")
    assert answers[3]["counts"]["waiting"] == 1  # pushes before stats are committed before it runs
    assert answers[4]["ok"] is True
    assert answers[5]["error"]["code"] == "PARSE_ERROR"
    assert sorted(j["name"] for j in answers[6]["jobs"]) == ["a", "d"]


async def test_crlf_and_line_split_across_writes(conn: Any) -> None:
    data = b'{"cmd":"push","queue":"s","name":"j"}\r\n{"cmd":"stats","queue":"s"}\n'
    for i in range(len(data)):
        await conn.send_raw(data[i : i + 1])
    assert (await conn.recv())["ok"] is True
    assert (await conn.recv())["counts"]["waiting"] == 1


async def test_overlong_line_is_refused_and_closes(engine: Any, tcp_server_factory: Any, connect: Any) -> None:
    server = await tcp_server_factory(engine, max_line_bytes=4096)
    conn = await connect(server)
    await conn.send_raw(lines({"cmd": "push", "queue": "l", "name": "ok"}))
    assert (await conn.recv())["ok"] is True
    await conn.send_raw(b'{"cmd":"push","queue":"l","name":"j","data":"' + b"x" * 5000)
    answer = await conn.recv()
    assert answer["error"]["code"] == "VALIDATION_ERROR"
    assert "maximum length of 4096" in answer["error"]["message"]
    assert await conn.at_eof()


async def test_default_limit_accepts_a_full_size_payload(conn: Any) -> None:
    data = "x" * (1_048_576 - 2)  # serialized as a JSON string: exactly 1 MiB
    answer = await conn.call({"cmd": "push", "queue": "big", "name": "j", "data": data})
    assert answer["ok"] is True
    too_big = await conn.call({"cmd": "push", "queue": "big", "name": "j", "data": data + "y"})
    assert too_big["error"]["code"] == "VALIDATION_ERROR"
    assert "exceeds maximum of 1048576 bytes" in too_big["error"]["message"]


async def test_client_disconnecting_mid_batch_does_not_hurt_the_server(
    server: TcpServer, engine: Any, connect: Any
) -> None:
    burst = lines(*[{"cmd": "push", "queue": "gone", "name": "j"} for _ in range(2000)])
    with socket.create_connection(("127.0.0.1", server.bound_port), timeout=5) as sock:
        sock.sendall(burst + b'{"cmd":"push","queue":"gone","na')
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # The server keeps serving other clients, and the complete requests were executed.
    conn = await connect()
    for _ in range(100):
        counts = (await conn.call({"cmd": "stats", "queue": "gone"}))["counts"]
        if counts["waiting"] == 2000:
            break
        await asyncio.sleep(0.05)
    # A reset may discard unread input, but never half a request: no more than the complete lines ran.
    assert 0 <= counts["waiting"] <= 2000
    assert (await conn.call({"cmd": "push", "queue": "after", "name": "j"}))["ok"] is True
    for _ in range(100):
        if not server.connections or len(server.connections) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(server.connections) == 1


async def test_half_closed_client_still_gets_its_answers(server: TcpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.write(lines(*[{"cmd": "push", "queue": "hc", "name": "j"} for _ in range(50)]))
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 10)
    answers = [msgspec.json.decode(line) for line in data.splitlines()]
    assert len(answers) == 50 and all(a["ok"] for a in answers)
    writer.close()


async def test_stop_answers_in_flight_requests_then_closes(engine: Any, tcp_server_factory: Any) -> None:
    server = await tcp_server_factory(engine)
    port = server.bound_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(lines({"cmd": "pull", "queue": "stop", "wait_ms": 300}))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(server.stop(), 10)
    answer = msgspec.json.decode(await asyncio.wait_for(reader.readline(), 10))
    assert answer == {"ok": True, "job": None}
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    refused = False
    try:
        _, late = await asyncio.open_connection("127.0.0.1", port)
        late.close()
    except OSError:
        refused = True
    assert refused
