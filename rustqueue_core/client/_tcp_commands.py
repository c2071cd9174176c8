"""TCP command builders shared by the sync and async TCP clients.

Each builder returns the command object and a function that turns the answer into the method's
return value, so both clients send exactly the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from rustqueue_core.client._common import ack_item, drop_none, lease_item, pulled_jobs, split_job_item


class Call(NamedTuple):
    command: dict[str, Any]
    extract: Callable[[dict[str, Any]], Any]
    #: Error codes that mean "nothing there": the method then returns None instead of raising.
    missing: tuple[str, ...] = ()


def _none(_: dict[str, Any]) -> None:
    return None


def _whole(answer: dict[str, Any]) -> dict[str, Any]:
    return answer


def push(queue: str, name: str, data: Any, options: Mapping[str, Any]) -> Call:
    command: dict[str, Any] = {
        "cmd": "push",
        "queue": queue,
        "name": name,
        "data": {} if data is None else data,
    }
    opts = drop_none(options)
    if opts:
        command["options"] = opts
    return Call(command, lambda a: a["id"])


def push_batch(queue: str, jobs: Sequence[Mapping[str, Any]]) -> Call:
    items: list[dict[str, Any]] = []
    for job in jobs:
        name, data, options = split_job_item(job)
        item: dict[str, Any] = {"name": name, "data": data}
        if options:
            item["options"] = options
        items.append(item)
    return Call({"cmd": "push_batch", "queue": queue, "jobs": items}, lambda a: list(a["ids"]))


def pull(
    queue: str,
    count: int | None,
    wait_ms: int | None = None,
    consumer_id: str | None = None,
    lease_ms: int | None = None,
) -> Call:
    command = drop_none(
        {
            "cmd": "pull",
            "queue": queue,
            "count": count,
            "wait_ms": wait_ms,
            "consumer_id": consumer_id,
            "lease_ms": lease_ms,
        }
    )
    return Call(command, pulled_jobs)


def ack(job_id: str, result: Any, lease_token: str | None) -> Call:
    command: dict[str, Any] = {"cmd": "ack", "id": job_id}
    if result is not None:
        command["result"] = result
    if lease_token:
        command["lease_token"] = lease_token
    return Call(command, _none)


def ack_batch(items: Sequence[Any]) -> Call:
    return Call({"cmd": "ack_batch", "items": [ack_item(item) for item in items]}, _whole)


def fail(job_id: str, error: str, lease_token: str | None, retry_delay_ms: int | None, dead: bool) -> Call:
    command = drop_none(
        {
            "cmd": "fail",
            "id": job_id,
            "error": error,
            "lease_token": lease_token,
            "retry_delay_ms": retry_delay_ms,
        }
    )
    if dead:
        command["dead"] = True
    return Call(command, _fail_answer)


def _fail_answer(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "will_retry": bool(answer.get("will_retry")),
        "next_attempt_at": answer.get("next_attempt_at"),
        "state": answer.get("state"),
    }


def nack(job_id: str, requeue: bool, reason: str | None, lease_token: str | None, consumer_id: str | None) -> Call:
    command = drop_none(
        {
            "cmd": "nack",
            "id": job_id,
            "requeue": requeue,
            "reason": reason,
            "lease_token": lease_token,
            "consumer_id": consumer_id,
        }
    )
    return Call(command, _fail_answer)


def release(target: str | Sequence[Any], lease_token: str | None, consumer_id: str | None) -> Call:
    if isinstance(target, str):
        command = drop_none({"cmd": "release", "id": target, "lease_token": lease_token, "consumer_id": consumer_id})
        return Call(command, _none)
    ids = [lease_item(item)["id"] for item in target]
    return Call(drop_none({"cmd": "release", "ids": ids, "consumer_id": consumer_id}), _whole)


def cancel(job_id: str) -> Call:
    return Call({"cmd": "cancel", "id": job_id}, _none)


def progress(job_id: str, value: int, message: str | None, lease_token: str | None) -> Call:
    command = drop_none(
        {"cmd": "progress", "id": job_id, "progress": value, "message": message, "lease_token": lease_token}
    )
    return Call(command, _none)


def heartbeat(target: str | Sequence[Any], lease_token: str | None, consumer_id: str | None) -> Call:
    if isinstance(target, str):
        return Call(drop_none({"cmd": "heartbeat", "id": target, "lease_token": lease_token}), _none)
    items = [lease_item(item) for item in target]
    return Call(drop_none({"cmd": "heartbeat", "items": items, "consumer_id": consumer_id}), _whole)


def renew(job_id: str, lease_ms: int | None, lease_token: str | None, consumer_id: str | None) -> Call:
    command = drop_none(
        {
            "cmd": "renew",
            "id": job_id,
            "lease_ms": lease_ms,
            "lease_token": lease_token,
            "consumer_id": consumer_id,
        }
    )
    return Call(command, _whole)


def get_job(job_id: str) -> Call:
    return Call({"cmd": "get", "id": job_id}, lambda a: a.get("job"), ("NOT_FOUND", "JOB_NOT_FOUND"))


def stats(queue: str) -> Call:
    return Call({"cmd": "stats", "queue": queue}, lambda a: dict(a["counts"]))


def list_queues() -> Call:
    return Call({"cmd": "list_queues"}, lambda a: list(a["queues"]))


def dlq(queue: str, limit: int) -> Call:
    return Call({"cmd": "dlq", "queue": queue, "limit": limit}, lambda a: list(a["jobs"]))


def flow(flow_id: str) -> Call:
    return Call({"cmd": "flow", "flow_id": flow_id}, _whole)


def health() -> Call:
    return Call({"cmd": "health"}, _whole)


def queue_pause(queue: str) -> Call:
    return Call({"cmd": "queue_pause", "queue": queue}, _none)


def queue_resume(queue: str) -> Call:
    return Call({"cmd": "queue_resume", "queue": queue}, _none)


def schedule_create(fields: Mapping[str, Any]) -> Call:
    command = {"cmd": "schedule_create", **drop_none(fields)}
    command.setdefault("job_data", {})
    return Call(command, _none)


def schedule_list() -> Call:
    return Call({"cmd": "schedule_list"}, lambda a: list(a["schedules"]))


def schedule_get(name: str) -> Call:
    return Call(
        {"cmd": "schedule_get", "name": name},
        lambda a: a.get("schedule"),
        ("NOT_FOUND", "SCHEDULE_NOT_FOUND"),
    )


def schedule_simple(cmd: str, name: str) -> Call:
    return Call({"cmd": cmd, "name": name}, _none)
