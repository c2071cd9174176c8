"""The JSON commands of the TCP protocol: one response line per request line, in order.

Consecutive ``push`` lines of one read burst go to the engine as one batch (one storage transaction);
if that batch is refused as a whole, each push is retried alone so every request gets its own answer.

On storages whose writes take effect in the order they are called (capability ``ordered_writes``),
consecutive pulls that do not wait, and consecutive acks of distinct jobs, are started together (see
:mod:`rustqueue_tcp.grouping`): their storage calls share one transaction and take effect in line
order, as they would one after another. Elsewhere every command waits for the one before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from rustqueue_core.errors import AuthError, RustQueueError, ValidationError
from rustqueue_core.models import BatchResult, Credentials, FailResult, NewJob, Principal
from rustqueue_tcp import wire
from rustqueue_tcp.admin_commands import AdminCommands
from rustqueue_tcp.grouping import group_kind, runs_writes_in_call_order
from rustqueue_tcp.wire import (
    AUTH_REQUIRED_MESSAGE,
    OK_LINE,
    CommandError,
    as_unsigned,
    encode_line,
    error_line,
    missing,
    optional_str,
    parse_job_id,
    require_str,
    validation,
)

if TYPE_CHECKING:
    from rustqueue_core.engine import RustQueue

log = logging.getLogger("rustqueue.tcp")

_BLANK_LINE_ERROR = "Invalid JSON: EOF while parsing a value at line 1 column 0"


class Session:
    """Per-connection state: who is connected and whether ``auth`` is still needed."""

    __slots__ = ("_allowed", "authenticated", "peer", "principal")

    def __init__(self, peer: str | None) -> None:
        self.peer = peer
        self.principal: Principal | None = None
        self.authenticated = False
        self._allowed: dict[tuple[str, str | None], bool] = {}

    def cached_permission(self, action: str, queue: str | None) -> bool | None:
        return self._allowed.get((action, queue))

    def remember_permission(self, action: str, queue: str | None, allowed: bool) -> None:
        if len(self._allowed) < 4096:
            self._allowed[(action, queue)] = allowed


def open_session(engine: RustQueue, peer: str | None) -> Session:
    """Decide at connection start whether the connection must send ``auth`` first: authentication
    is on when the host rejects empty credentials."""
    session = Session(peer)
    host = getattr(engine, "host", None)
    if host is None:
        session.authenticated = True
        return session
    try:
        # No peer on the probe: an auth plugin must not count it as a failed attempt of this client.
        session.principal = host.authenticate(Credentials(transport="tcp"))
        session.authenticated = True
    except AuthError:
        session.authenticated = False
    except RustQueueError:
        # Rate limited or similar: require an explicit auth command.
        session.authenticated = False
    return session


Handler = Callable[[Session, dict[str, Any]], Awaitable[bytes]]


class CommandProcessor(AdminCommands):
    """Runs the JSON commands of one connection against the engine."""

    def __init__(self, engine: RustQueue) -> None:
        self.engine = engine
        #: Whether consecutive pulls / acks of a burst may be started together.
        self.group_commands = runs_writes_in_call_order(getattr(engine, "storage", None))
        self._handlers: dict[str, Handler] = {
            "auth": self._auth,
            "push": self._push_single,
            "push_batch": self._push_batch,
            "pull": self._pull,
            "ack": self._ack,
            "ack_batch": self._ack_batch,
            "fail": self._fail,
            "nack": self._nack,
            "release": self._release,
            "cancel": self._cancel,
            "progress": self._progress,
            "heartbeat": self._heartbeat,
            "renew": self._renew,
            "get": self._get,
            "stats": self._stats,
            "list_queues": self._list_queues,
            "dlq": self._dlq,
            "flow": self._flow,
            "health": self._health,
            "queue_pause": self._queue_pause,
            "queue_resume": self._queue_resume,
            "schedule_create": self._schedule_create,
            "schedule_list": self._schedule_list,
            "schedule_get": self._schedule_get,
            "schedule_delete": self._schedule_delete,
            "schedule_pause": self._schedule_pause,
            "schedule_resume": self._schedule_resume,
        }

    # ------------------------------------------------------------------ burst entry point
    async def run_lines(self, session: Session, lines: Sequence[bytes]) -> list[bytes]:
        out: list[bytes] = [b""] * len(lines)
        pending: list[tuple[int, NewJob]] = []
        group: list[tuple[int, Handler, dict[str, Any]]] = []
        running_kind = ""
        group_ids: set[str] = set()
        for index, raw in enumerate(lines):
            try:
                command = self._decode(raw)
                name = command.get("cmd")
                if not isinstance(name, str):
                    raise validation("Missing or invalid 'cmd' field")
                if not session.authenticated and name != "auth":
                    raise CommandError("UNAUTHORIZED", AUTH_REQUIRED_MESSAGE)
                if name == "push":
                    if group:
                        await self._run_group(session, group, out)
                        group, running_kind, group_ids = [], "", set()
                    job = self._read_push(command)
                    self._authorize(session, "push", job.queue)
                    pending.append((index, job))
                    continue
                handler = self._handlers.get(name)
                if handler is None:
                    raise CommandError("UNKNOWN_COMMAND", f"Unknown command: {name}")
                if pending:
                    await self._flush_pushes(session, pending, out)
                    pending = []
                kind, ids = group_kind(name, command) if self.group_commands else ("", [])
                if group and (kind != running_kind or not group_ids.isdisjoint(ids)):
                    await self._run_group(session, group, out)
                    group, running_kind, group_ids = [], "", set()
                if kind:
                    group.append((index, handler, command))
                    running_kind = kind
                    group_ids.update(ids)
                    continue
                out[index] = await handler(session, command)
            except CommandError as exc:
                out[index] = error_line(exc.code, exc.message)
            except RustQueueError as exc:
                out[index] = error_line(exc.code, exc.message)
            except Exception as exc:
                log.exception("TCP command failed")
                out[index] = error_line("INTERNAL_ERROR", f"Internal error: {exc}")
        if group:
            await self._run_group(session, group, out)
        if pending:
            await self._flush_pushes(session, pending, out)
        return out

    async def _run_group(
        self, session: Session, group: list[tuple[int, Handler, dict[str, Any]]], out: list[bytes]
    ) -> None:
        if len(group) == 1:
            index, handler, command = group[0]
            results: list[Any] = [await _outcome(handler(session, command))]
        else:
            results = await asyncio.gather(*(_outcome(handler(session, command)) for _, handler, command in group))
        for (index, _, _), result in zip(group, results, strict=True):
            out[index] = result

    @staticmethod
    def _decode(raw: bytes) -> dict[str, Any]:
        line = raw.strip()
        if not line:
            raise CommandError("PARSE_ERROR", _BLANK_LINE_ERROR)
        try:
            value = wire.decode(line)
        except msgspec.DecodeError as exc:
            raise CommandError("PARSE_ERROR", f"Invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise validation("Missing or invalid 'cmd' field")
        return value

    def _authorize(self, session: Session, action: str, queue: str | None) -> None:
        host = getattr(self.engine, "host", None)
        if host is None or session.principal is None:
            return
        allowed = session.cached_permission(action, queue)
        if allowed is None:
            allowed = bool(host.authorize(session.principal, action, queue))
            session.remember_permission(action, queue, allowed)
        if not allowed:
            raise CommandError("UNAUTHORIZED", f"Not allowed: {action}")

    # ------------------------------------------------------------------ push
    @staticmethod
    def _read_push(command: Mapping[str, Any]) -> NewJob:
        queue = require_str(command, "queue")
        name = require_str(command, "name")
        data = command.get("data", {})
        options = wire.read_push_options(command, wire.PUSH_OPTION_TRIGGERS)
        return NewJob(queue=queue, name=name, data=data, options=options)

    async def _flush_pushes(self, session: Session, pending: list[tuple[int, NewJob]], out: list[bytes]) -> None:
        jobs = [job for _, job in pending]
        try:
            ids = await self.engine.push_batch(None, jobs, principal=session.principal)
        except RustQueueError as exc:
            if len(pending) == 1:
                out[pending[0][0]] = _single_push_error(exc)
                return
            # The batch is atomic; retry one by one so each request gets its own outcome.
            for index, job in pending:
                out[index] = await self._push_alone(session, job)
            return
        except Exception as exc:
            log.exception("TCP push failed")
            line = error_line("INTERNAL_ERROR", f"Internal error: {exc}")
            for index, _ in pending:
                out[index] = line
            return
        for (index, _), job_id in zip(pending, ids, strict=True):
            out[index] = encode_line({"ok": True, "id": job_id})

    async def _push_alone(self, session: Session, job: NewJob) -> bytes:
        try:
            ids = await self.engine.push_batch(None, [job], principal=session.principal)
        except RustQueueError as exc:
            return _single_push_error(exc)
        except Exception as exc:
            log.exception("TCP push failed")
            return error_line("INTERNAL_ERROR", f"Internal error: {exc}")
        return encode_line({"ok": True, "id": ids[0]})

    async def _push_single(self, session: Session, command: dict[str, Any]) -> bytes:
        job = self._read_push(command)
        self._authorize(session, "push", job.queue)
        return await self._push_alone(session, job)

    async def _push_batch(self, session: Session, command: dict[str, Any]) -> bytes:
        queue = require_str(command, "queue")
        items = command.get("jobs")
        if not isinstance(items, list):
            raise validation("Missing or invalid 'jobs' field")
        jobs: list[NewJob] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise validation(f"jobs[{i}] must be an object")
            name = item.get("name")
            if not isinstance(name, str):
                raise validation(f"jobs[{i}] missing 'name' field")
            options = wire.read_push_options(item, wire.BATCH_OPTION_TRIGGERS)
            jobs.append(NewJob(queue=queue, name=name, data=item.get("data", {}), options=options))
        self._authorize(session, "push", queue)
        ids = await self.engine.push_batch(queue, jobs, principal=session.principal)
        return encode_line({"ok": True, "ids": ids})

    # ------------------------------------------------------------------ delivery
    async def _pull(self, session: Session, command: dict[str, Any]) -> bytes:
        queue = require_str(command, "queue")
        count = wire.coerce_count(command["count"]) if "count" in command else 1
        self._authorize(session, "pull", queue)
        wait_ms = as_unsigned(command.get("wait_ms"))
        lease_ms = as_unsigned(command.get("lease_ms"))
        jobs = await self.engine.claim(
            queue,
            count,
            consumer_id=optional_str(command, "consumer_id"),
            lease_ms=lease_ms or None,
            wait=wait_ms / 1000.0 if wait_ms else None,
        )
        if count == 1:
            job = wire.job_to_wire(jobs[0], with_lease=True) if jobs else None
            return encode_line({"ok": True, "job": job})
        return encode_line({"ok": True, "jobs": [wire.job_to_wire(j, with_lease=True) for j in jobs]})

    async def _ack(self, session: Session, command: dict[str, Any]) -> bytes:
        job_id = self._job_id(command)
        self._authorize(session, "ack", None)
        await self.engine.ack(job_id, command.get("result"), token=optional_str(command, "lease_token"))
        return OK_LINE

    async def _ack_batch(self, session: Session, command: dict[str, Any]) -> bytes:
        items = command.get("items")
        entries: list[dict[str, Any] | str] = []
        if isinstance(items, list):
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise validation(f"items[{i}] must be an object")
                if not isinstance(item.get("id"), str):
                    raise validation(f"items[{i}] missing 'id' field")
                job_id = parse_job_id(item["id"], f"items[{i}] has invalid job ID format")
                entry: dict[str, Any] = {"id": job_id, "result": item.get("result")}
                token = optional_str(item, "lease_token")
                if token is not None:
                    entry["token"] = token
                entries.append(entry)
        else:
            ids = command.get("ids")
            if not isinstance(ids, list):
                raise validation("Missing 'items' or 'ids' field for ack_batch")
            for i, raw_id in enumerate(ids):
                if not isinstance(raw_id, str):
                    raise validation(f"ids[{i}] must be a string")
                entries.append(parse_job_id(raw_id, f"ids[{i}] has invalid job ID format"))
        self._authorize(session, "ack", None)
        result = await self.engine.ack_batch(entries)
        body = _batch_body(result)
        return encode_line({"ok": result.failed == 0, "acked": result.ok, **body})

    async def _fail(self, session: Session, command: dict[str, Any]) -> bytes:
        job_id = self._job_id(command)
        error = command.get("error")
        if not isinstance(error, str):
            error = "unknown error"
        self._authorize(session, "fail", None)
        retry_delay = as_unsigned(command.get("retry_delay_ms"))
        result = await self.engine.fail(
            job_id,
            error,
            token=optional_str(command, "lease_token"),
            retry_delay_ms=retry_delay,
            dead=command.get("dead") is True,
        )
        return encode_line(_fail_body(result))

    async def _nack(self, session: Session, command: dict[str, Any]) -> bytes:
        job_id = self._job_id(command)
        self._authorize(session, "fail", None)
        result = await self.engine.nack(
            job_id,
            token=optional_str(command, "lease_token"),
            consumer_id=optional_str(command, "consumer_id"),
            requeue=command.get("requeue") is not False,
            reason=optional_str(command, "reason"),
        )
        return encode_line(_fail_body(result))

    async def _release(self, session: Session, command: dict[str, Any]) -> bytes:
        self._authorize(session, "ack", None)
        if "ids" in command:
            ids = self._id_list(command, "ids")
            result = await self.engine.release(ids, consumer_id=optional_str(command, "consumer_id"))
            return encode_line({"ok": True, "released": result.ok, **_batch_body(result)})
        job_id = self._job_id(command)
        result = await self.engine.release(
            job_id,
            token=optional_str(command, "lease_token"),
            consumer_id=optional_str(command, "consumer_id"),
        )
        _raise_first_failure(result)
        return OK_LINE

    async def _cancel(self, session: Session, command: dict[str, Any]) -> bytes:
        job_id = self._job_id(command)
        self._authorize(session, "cancel", None)
        await self.engine.cancel(job_id)
        return OK_LINE

    async def _progress(self, session: Session, command: dict[str, Any]) -> bytes:
        job_id = self._job_id(command)
        raw = as_unsigned(command.get("progress"))
        if raw is None:
            raise missing("progress")
        value = min(raw & 0xFF, 100)  # the original truncates to 8 bits, then clamps
        self._authorize(session, "progress", None)
        await self.engine.progress(
            job_id, value, optional_str(command, "message"), token=optional_str(command, "lease_token")
        )
        return OK_LINE

    async def _heartbeat(self, session: Session, command: dict[str, Any]) -> bytes:
        self._authorize(session, "heartbeat", None)
        if "items" in command or "ids" in command:
            targets = self._lease_items(command)
            result = await self.engine.heartbeat(targets, consumer_id=optional_str(command, "consumer_id"))
            return encode_line({"ok": True, "succeeded": result.ok, **_batch_body(result)})
        job_id = self._job_id(command)
        result = await self.engine.heartbeat(job_id, token=optional_str(command, "lease_token"))
        _raise_first_failure(result)
        return OK_LINE

    async def _renew(self, session: Session, command: dict[str, Any]) -> bytes:
        job_id = self._job_id(command)
        self._authorize(session, "heartbeat", None)
        job = await self.engine.renew(
            job_id,
            as_unsigned(command.get("lease_ms")) or None,
            token=optional_str(command, "lease_token"),
            consumer_id=optional_str(command, "consumer_id"),
        )
        return encode_line({"ok": True, "lease_expires_at": job.lease_expires_at, "lease_ms": job.lease_ms})

    # ------------------------------------------------------------------ inspection
    async def _get(self, session: Session, command: dict[str, Any]) -> bytes:
        job_id = self._job_id(command)
        self._authorize(session, "read", None)
        job = await self.engine.get_job(job_id)
        return encode_line({"ok": True, "job": wire.job_to_wire(job) if job is not None else None})

    # ------------------------------------------------------------------ auth
    async def _auth(self, session: Session, command: dict[str, Any]) -> bytes:
        if session.authenticated:
            return OK_LINE  # the Node and Go SDKs send auth whenever they have a token
        token = command.get("token")
        if not isinstance(token, str):
            raise validation("Missing 'token' field in auth command")
        host = self.engine.host
        if host is None:
            session.authenticated = True
            return OK_LINE
        try:
            principal = host.authenticate(Credentials(transport="tcp", token=token, peer=session.peer))
        except AuthError:
            raise CommandError("UNAUTHORIZED", "Invalid authentication token") from None
        session.principal = principal
        session.authenticated = True
        return OK_LINE

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _job_id(command: Mapping[str, Any]) -> str:
        if "id" not in command or command["id"] is None:
            raise missing("id")
        return parse_job_id(command["id"])

    @staticmethod
    def _id_list(command: Mapping[str, Any], field: str) -> list[str]:
        raw = command.get(field)
        if not isinstance(raw, list):
            raise missing(field)
        ids: list[str] = []
        for i, value in enumerate(raw):
            if not isinstance(value, str):
                raise validation(f"{field}[{i}] must be a string")
            ids.append(parse_job_id(value, f"{field}[{i}] has invalid job ID format"))
        return ids

    @classmethod
    def _lease_items(cls, command: Mapping[str, Any]) -> list[Any]:
        """``ids`` (strings) or ``items`` (``{"id", "lease_token"?}``) for batched lease calls."""
        if "ids" in command:
            return list(cls._id_list(command, "ids"))
        raw = command.get("items")
        if not isinstance(raw, list):
            raise missing("items")
        targets: list[Any] = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise validation(f"items[{i}] missing 'id' field")
            job_id = parse_job_id(item["id"], f"items[{i}] has invalid job ID format")
            token = optional_str(item, "lease_token")
            targets.append({"id": job_id, "token": token} if token is not None else job_id)
        return targets


async def _outcome(call: Awaitable[bytes]) -> bytes:
    try:
        return await call
    except CommandError as exc:
        return error_line(exc.code, exc.message)
    except RustQueueError as exc:
        return error_line(exc.code, exc.message)
    except Exception as exc:
        log.exception("TCP command failed")
        return error_line("INTERNAL_ERROR", f"Internal error: {exc}")


def _single_push_error(exc: RustQueueError) -> bytes:
    """A single push answers like the original: without the batch item index in the message."""
    if isinstance(exc, ValidationError) and exc.index is not None:
        return error_line(exc.code, f"Validation error: {exc.reason}")
    return error_line(exc.code, exc.message)


def _batch_body(result: BatchResult) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for item in result.results:
        if item.ok:
            results.append({"id": item.id, "ok": True})
        else:
            error = {"code": item.error_code or "INTERNAL_ERROR", "message": item.error_message or ""}
            results.append({"id": item.id, "ok": False, "error": error})
    return {"failed": result.failed, "results": results}


def _fail_body(result: FailResult) -> dict[str, Any]:
    return {
        "ok": True,
        "will_retry": result.will_retry,
        "next_attempt_at": wire.offset_timestamp(result.next_attempt_at),
        "state": result.state,
    }


def _raise_first_failure(result: BatchResult) -> None:
    for item in result.results:
        if not item.ok:
            raise CommandError(item.error_code or "INTERNAL_ERROR", item.error_message or "")
