"""Binary batch frames (0x01 push, 0x02 pull, 0x03 ack, 0x10 channel) on the TCP port."""

from __future__ import annotations

import struct
import uuid
from typing import Any

from rustqueue_tcp import binary


async def read_push_ok(conn: Any) -> list[str]:
    head = await conn.read_exactly(5)
    assert head[0] == 0x00, head
    count = struct.unpack(">I", head[1:])[0]
    raw = await conn.read_exactly(16 * count)
    return [str(uuid.UUID(bytes=raw[i : i + 16])) for i in range(0, len(raw), 16)]


async def read_pull_ok(conn: Any) -> list[tuple[str, bytes]]:
    head = await conn.read_exactly(5)
    assert head[0] == 0x00, head
    items = []
    for _ in range(struct.unpack(">I", head[1:])[0]):
        job_id = str(uuid.UUID(bytes=await conn.read_exactly(16)))
        length = struct.unpack(">I", await conn.read_exactly(4))[0]
        items.append((job_id, await conn.read_exactly(length)))
    return items


async def read_error(conn: Any) -> str:
    head = await conn.read_exactly(3)
    assert head[0] == 0x01, head
    return (await conn.read_exactly(struct.unpack(">H", head[1:])[0])).decode()


async def test_push_pull_ack_round_trip(conn: Any, engine: Any) -> None:
    await conn.send_raw(binary.encode_push_frame("bin", [b'{"n":1}', b"plain text", b"\xff\xfe"]))
    ids = await read_push_ok(conn)
    assert len(ids) == 3
    jobs = await engine.get_jobs(ids)
    assert [j.name for j in jobs] == ["binary-job-0", "binary-job-1", "binary-job-2"]
    assert jobs[0].data == {"n": 1}
    assert jobs[1].data == "plain text"
    assert jobs[2].data == "\ufffd\ufffd"
    await conn.send_raw(binary.encode_pull_frame("bin", 10))
    pulled = await read_pull_ok(conn)
    assert [job_id for job_id, _ in pulled] == ids
    assert pulled[0][1] == b'{"n":1}' and pulled[1][1] == b'"plain text"'
    unknown = uuid.uuid4().bytes
    await conn.send_raw(binary.encode_ack_frame([uuid.UUID(i).bytes for i in ids] + [unknown]))
    assert await conn.read_exactly(9) == b"\x00" + struct.pack(">II", 3, 1)
    assert {j.state for j in await engine.get_jobs(ids)} == {"completed"}


async def test_channel_frames_prefix_the_channel_id(conn: Any) -> None:
    await conn.send_raw(binary.encode_channel_frame(513, binary.encode_push_frame("ch", [b"1", b"2"])))
    assert await conn.read_exactly(2) == struct.pack(">H", 513)
    ids = await read_push_ok(conn)
    await conn.send_raw(binary.encode_channel_frame(7, binary.encode_pull_frame("ch", 1)))
    assert await conn.read_exactly(2) == b"\x00\x07"
    assert [job_id for job_id, _ in await read_pull_ok(conn)] == ids[:1]
    await conn.send_raw(binary.encode_channel_frame(9, binary.encode_ack_frame([uuid.UUID(ids[0]).bytes])))
    assert await conn.read_exactly(11) == b"\x00\x09\x00" + struct.pack(">II", 1, 0)


async def test_frames_cut_into_pieces_are_reassembled(conn: Any) -> None:
    frame = binary.encode_push_frame("cut", [b'{"a":"' + b"x" * 3000 + b'"}' for _ in range(20)])
    frame += binary.encode_pull_frame("cut", 2)
    for start in range(0, len(frame), 777):
        await conn.send_raw(frame[start : start + 777])
    assert len(await read_push_ok(conn)) == 20
    assert len(await read_pull_ok(conn)) == 2


async def test_binary_and_json_alternate_on_one_connection(conn: Any) -> None:
    await conn.send_raw(binary.encode_push_frame("alt", [b"{}"]))
    (job_id,) = await read_push_ok(conn)
    answer = await conn.call({"cmd": "get", "id": job_id})
    assert answer["job"]["name"] == "binary-job-0"
    await conn.send_raw(binary.encode_pull_frame("alt", 1))
    assert [i for i, _ in await read_pull_ok(conn)] == [job_id]
    assert (await conn.call({"cmd": "stats", "queue": "alt"}))["counts"]["active"] == 1


async def test_engine_errors_come_back_as_binary_errors(conn: Any) -> None:
    assert (await conn.call({"cmd": "queue_pause", "queue": "paused"}))["ok"] is True
    await conn.send_raw(binary.encode_push_frame("paused", [b"1"]))
    assert await read_error(conn) == "Queue 'paused' is paused"
    await conn.send_raw(binary.encode_push_frame("bad queue", [b"1"]))
    assert (await read_error(conn)).startswith("Validation error:")
    # The connection is still usable.
    await conn.send_raw(binary.encode_pull_frame("other", 1))
    assert await read_pull_ok(conn) == []


async def test_payload_over_one_mebibyte_is_refused_without_closing(conn: Any) -> None:
    await conn.send_raw(binary.encode_push_frame("big", [b"x" * (binary.MAX_PAYLOAD + 1)]))
    assert await read_error(conn) == f"Decode error: payload too large: {binary.MAX_PAYLOAD + 1} bytes"
    await conn.send_raw(binary.encode_pull_frame("big", 1))
    assert await read_pull_ok(conn) == []


async def test_framing_errors_close_the_connection(connect: Any) -> None:
    conn = await connect()
    await conn.send_raw(b"\x01\x00\x01q\x00\x00\x00\x01" + struct.pack(">I", binary.MAX_READ_PAYLOAD + 1))
    assert (await read_error(conn)).startswith("Decode error: payload too large")
    assert await conn.at_eof()
    conn = await connect()
    await conn.send_raw(binary.encode_channel_frame(1, b"\x10\x00\x01"))
    assert "invalid inner frame type" in await read_error(conn)
    assert await conn.at_eof()


async def test_a_cut_frame_then_disconnect_leaves_the_server_healthy(connect: Any) -> None:
    first = await connect()
    await first.send_raw(binary.encode_push_frame("half", [b"1" * 100])[:40])
    await first.close()
    second = await connect()
    assert (await second.call({"cmd": "stats", "queue": "half"}))["counts"]["waiting"] == 0
