"""The TCP commands that read state or administer queues and schedules: a mixin of
:class:`rustqueue_tcp.commands.CommandProcessor`, which supplies the engine and authorization."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rustqueue_core.errors import ScheduleNotFound
from rustqueue_tcp import wire
from rustqueue_tcp.wire import OK_LINE, CommandError, as_unsigned, encode_line, optional_str, require_str

if TYPE_CHECKING:
    from rustqueue_core.engine import RustQueue
    from rustqueue_tcp.commands import Session


class AdminCommands:
    """Handlers of ``stats``, ``list_queues``, ``dlq``, ``flow``, ``health``, ``queue_pause`` /
    ``queue_resume`` and the ``schedule_*`` commands."""

    engine: RustQueue

    def _authorize(self, session: Session, action: str, queue: str | None) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ reads
    async def _stats(self, session: Session, command: dict[str, Any]) -> bytes:
        queue = require_str(command, "queue")
        self._authorize(session, "read", queue)
        counts = await self.engine.counts(queue)
        return encode_line({"ok": True, "counts": wire.counts_to_wire(counts)})

    async def _list_queues(self, session: Session, command: dict[str, Any]) -> bytes:
        self._authorize(session, "read", None)
        queues = await self.engine.queues()
        body = [{"name": q.name, "counts": wire.counts_to_wire(q.counts)} for q in queues]
        return encode_line({"ok": True, "queues": body})

    async def _dlq(self, session: Session, command: dict[str, Any]) -> bytes:
        queue = require_str(command, "queue")
        limit = as_unsigned(command.get("limit"))
        self._authorize(session, "read", queue)
        jobs = await self.engine.dlq(queue, 50 if limit is None else limit)
        return encode_line({"ok": True, "jobs": [wire.job_to_wire(j) for j in jobs]})

    async def _flow(self, session: Session, command: dict[str, Any]) -> bytes:
        flow_id = require_str(command, "flow_id")
        self._authorize(session, "read", None)
        info = await self.engine.flow(flow_id)
        return encode_line(
            {
                "ok": True,
                "flow_id": info.flow_id,
                "jobs": [wire.job_to_wire(j) for j in info.jobs],
                "summary": info.summary,
            }
        )

    async def _health(self, session: Session, command: dict[str, Any]) -> bytes:
        health = await self.engine.health()
        return encode_line(
            {
                "ok": True,
                # The original's clients read "healthy"; other states pass through as they are.
                "status": "healthy" if health.status == "ok" else health.status,
                "state": health.state,
                "version": health.version,
                "uptime_seconds": health.uptime_seconds,
            }
        )

    # ------------------------------------------------------------------ admin
    async def _named(
        self,
        session: Session,
        command: dict[str, Any],
        field: str,
        action: str,
        call: Callable[[str], Awaitable[Any]],
    ) -> bytes:
        """A command naming one queue or schedule (``field``) that answers ``{"ok": true}``."""
        name = require_str(command, field)
        self._authorize(session, action, name if field == "queue" else None)
        await call(name)
        return OK_LINE

    async def _queue_pause(self, session: Session, command: dict[str, Any]) -> bytes:
        return await self._named(session, command, "queue", "admin", self.engine.pause_queue)

    async def _queue_resume(self, session: Session, command: dict[str, Any]) -> bytes:
        return await self._named(session, command, "queue", "admin", self.engine.resume_queue)

    async def _schedule_create(self, session: Session, command: dict[str, Any]) -> bytes:
        name = require_str(command, "name")
        queue = require_str(command, "queue")
        job_name = require_str(command, "job_name")
        self._authorize(session, "schedule", queue)
        await self.engine.create_schedule(
            name=name,
            queue=queue,
            job_name=job_name,
            job_data=command.get("job_data", {}),
            job_options=wire.convert_options(command.get("job_options")),
            cron_expr=optional_str(command, "cron_expr"),
            every_ms=as_unsigned(command.get("every_ms")),
            timezone=optional_str(command, "timezone"),
            max_executions=as_unsigned(command.get("max_executions")),
        )
        return OK_LINE

    async def _schedule_list(self, session: Session, command: dict[str, Any]) -> bytes:
        self._authorize(session, "read", None)
        schedules = await self.engine.list_schedules()
        return encode_line({"ok": True, "schedules": [wire.schedule_to_wire(s) for s in schedules]})

    async def _schedule_get(self, session: Session, command: dict[str, Any]) -> bytes:
        name = require_str(command, "name")
        self._authorize(session, "read", None)
        try:
            schedule = await self.engine.get_schedule(name)
        except ScheduleNotFound:
            raise CommandError("NOT_FOUND", f"Schedule '{name}' not found") from None
        return encode_line({"ok": True, "schedule": wire.schedule_to_wire(schedule)})

    async def _schedule_delete(self, session: Session, command: dict[str, Any]) -> bytes:
        return await self._named(session, command, "name", "schedule", self.engine.delete_schedule)

    async def _schedule_pause(self, session: Session, command: dict[str, Any]) -> bytes:
        return await self._named(session, command, "name", "schedule", self.engine.pause_schedule)

    async def _schedule_resume(self, session: Session, command: dict[str, Any]) -> bytes:
        return await self._named(session, command, "name", "schedule", self.engine.resume_schedule)
