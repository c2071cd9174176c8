"""Schedules (SEMANTICS §3.2): upsert rules, once-per-slot fires through ``storage.fire_schedule``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from rustqueue_core.admin import AdminMixin
from rustqueue_core.errors import InternalError, RustQueueError, ScheduleNotFound, ValidationError
from rustqueue_core.models import JobOptions, NewJob, Schedule
from rustqueue_core.scheduling import load_timezone, next_cron, next_interval, normalize_cron
from rustqueue_core.storage import InsertConflict
from rustqueue_core.validation import check_job_name, check_options, check_priority, options_from_mapping

log = logging.getLogger("rustqueue.schedules")

_FIELDS = frozenset(
    {
        "name",
        "queue",
        "job_name",
        "job_data",
        "job_options",
        "cron_expr",
        "every_ms",
        "timezone",
        "max_executions",
        "run_immediately",
    }
)
_DEFINITION = (
    "queue",
    "job_name",
    "job_data",
    "job_options",
    "cron_expr",
    "every_ms",
    "timezone",
    "max_executions",
    "run_immediately",
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_schedule_name(name: object) -> str:
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
        raise ValidationError(
            "Schedule name must be non-empty and contain only alphanumeric characters, dashes, underscores, or dots"
        )
    if len(name) > 256:
        raise ValidationError("Schedule name exceeds maximum length of 256 bytes")
    return name


def next_fire(schedule: Schedule, after: datetime, previous: datetime | None) -> datetime:
    """The slot after a fire at ``after``; ``previous`` is the slot that fired (intervals)."""
    if schedule.cron_expr is not None:
        return next_cron(normalize_cron(schedule.cron_expr), load_timezone(schedule.timezone), after)
    assert schedule.every_ms is not None
    return next_interval(schedule.every_ms, previous, after)


class ScheduleMixin(AdminMixin):
    async def create_schedule(self, schedule: Mapping[str, Any] | None = None, **fields: Any) -> Schedule:
        """Fields: name, queue, job_name, job_data, job_options, cron_expr | every_ms, timezone,
        max_executions, run_immediately. Upsert (SEMANTICS §3.2 rule 1)."""
        self._gate_mutation()
        raw: dict[str, Any] = {**(dict(schedule) if schedule else {}), **fields}
        unknown = sorted(k for k in raw if k not in _FIELDS)
        if unknown:
            raise ValidationError(f"Unknown schedule field '{unknown[0]}'")
        name = _check_schedule_name(raw.get("name"))
        queue = self._check_queue(raw.get("queue"))
        job_name = check_job_name(raw.get("job_name"))
        options_raw = raw.get("job_options")
        options: JobOptions | None
        if options_raw is None:
            options = None
        elif isinstance(options_raw, JobOptions):
            options = options_raw
        elif isinstance(options_raw, Mapping):
            options = options_from_mapping(options_raw)
        else:
            raise ValidationError("job_options must be an object")
        if options is not None:
            check_options(options)
            if options.priority is not None:
                check_priority(options.priority, self._config(queue).priority_kind)
        job_data = raw.get("job_data", {})
        cron_expr, every_ms = raw.get("cron_expr"), raw.get("every_ms")
        if cron_expr is None and every_ms is None:
            raise ValidationError("Schedule must have cron_expr or every_ms")
        if cron_expr is not None and every_ms is not None:
            raise ValidationError("Schedule cannot have both cron_expr and every_ms")
        timezone = raw.get("timezone")
        tz = load_timezone(timezone)
        if cron_expr is not None:
            normalize_cron(cron_expr)
        elif isinstance(every_ms, bool) or not isinstance(every_ms, int) or every_ms < 1:
            raise ValidationError("every_ms must be an integer of at least 1")
        max_executions = raw.get("max_executions")
        if max_executions is not None and (
            isinstance(max_executions, bool) or not isinstance(max_executions, int) or max_executions < 0
        ):
            raise ValidationError("max_executions must be a non-negative integer")
        run_immediately = raw.get("run_immediately", True)
        if run_immediately is None:
            run_immediately = True
        if not isinstance(run_immediately, bool):
            raise ValidationError("run_immediately must be a boolean")
        now = self.clock.now()
        definition = Schedule(
            name=name,
            queue=queue,
            job_name=job_name,
            job_data=job_data,
            job_options=options,
            cron_expr=cron_expr,
            every_ms=every_ms,
            timezone=timezone,
            max_executions=max_executions,
            run_immediately=run_immediately,
            created_at=now,
            updated_at=now,
        )
        existing = await self.storage.get_schedule(name)
        if existing is not None:
            if all(getattr(existing, f) == getattr(definition, f) for f in _DEFINITION):
                return existing
            definition = msgspec.structs.replace(
                definition,
                created_at=existing.created_at,
                execution_count=existing.execution_count,
                last_run_at=existing.last_run_at,
                paused=existing.paused,
                last_error=existing.last_error,
            )
        last = definition.last_run_at
        if last is not None:
            next_run = next_fire(definition, last, last)
        elif run_immediately:
            next_run = None
        elif cron_expr is not None:
            next_run = next_cron(normalize_cron(cron_expr), tz, now)
        else:
            assert isinstance(every_ms, int)
            next_run = next_interval(every_ms, None, now)
        definition = msgspec.structs.replace(definition, next_run_at=next_run)
        await self.storage.put_schedule(definition)
        return definition

    def _check_queue(self, queue: object) -> str:
        from rustqueue_core.validation import check_queue_name

        return check_queue_name(queue)

    async def get_schedule(self, name: str) -> Schedule:
        self._gate_read()
        found = await self.storage.get_schedule(name)
        if found is None:
            raise ScheduleNotFound(name)
        return found

    async def list_schedules(self) -> list[Schedule]:
        self._gate_read()
        return await self.storage.list_schedules()

    async def delete_schedule(self, name: str) -> bool:
        self._gate_mutation()
        return await self.storage.delete_schedule(name)

    async def _set_schedule_paused(self, name: str, paused: bool) -> Schedule:
        self._gate_mutation()
        found = await self.storage.get_schedule(name)
        if found is None:
            raise ScheduleNotFound(name)
        updated = msgspec.structs.replace(found, paused=paused, updated_at=self.clock.now())
        await self.storage.put_schedule(updated)
        return updated

    async def pause_schedule(self, name: str) -> Schedule:
        return await self._set_schedule_paused(name, True)

    async def resume_schedule(self, name: str) -> Schedule:
        return await self._set_schedule_paused(name, False)

    # ------------------------------------------------------------------ firing
    async def _fire_due_schedules(self, now: datetime) -> int:
        """Fire each due schedule at most once (SEMANTICS §3.2 rules 3 to 8). Returns the number fired."""
        fired = 0
        for schedule in await self.storage.list_schedules(active_only=True):
            if schedule.paused or (schedule.next_run_at is not None and schedule.next_run_at > now):
                continue
            try:
                if await self._fire_one(schedule, now):
                    fired += 1
                    self.schedules_fired += 1
            except Exception:
                log.exception("schedule %r failed to fire", schedule.name)
        return fired

    async def _fire_one(self, schedule: Schedule, now: datetime) -> bool:
        expected = schedule.next_run_at
        next_run = next_fire(schedule, now, expected)
        item = NewJob(
            queue=schedule.queue,
            name=schedule.job_name,
            data=schedule.job_data if schedule.job_data is not None else {},
            options=schedule.job_options or JobOptions(),
        )
        try:
            jobs, taken = await self._prepare([item], None, now, index_names=False)
        except (RustQueueError, InsertConflict) as exc:
            return await self._skip_slot(schedule, expected, next_run, exc, now)
        count = schedule.execution_count + 1
        updates: dict[str, Any] = {
            "execution_count": count,
            "last_run_at": now,
            "last_error": None,
            "next_run_at": next_run,
        }
        if schedule.max_executions is not None and count >= max(schedule.max_executions, 1):
            updates["paused"] = True
        try:
            won = await self.storage.fire_schedule(schedule.name, expected, updates, jobs, now)
        except InsertConflict as conflict:
            self._refund(taken)
            from rustqueue_core.errors import DuplicateKey

            return await self._skip_slot(
                schedule, expected, next_run, DuplicateKey(conflict.key, conflict.holder_id), now
            )
        except BaseException:
            self._refund(taken)
            raise
        if not won:
            self._refund(taken)
            return False
        self._after_insert(jobs, now)
        return True

    async def _skip_slot(
        self, schedule: Schedule, expected: datetime | None, next_run: datetime, exc: Exception, now: datetime
    ) -> bool:
        if isinstance(exc, InternalError):
            raise exc
        code = exc.code if isinstance(exc, RustQueueError) else "DUPLICATE_KEY"
        won = await self.storage.fire_schedule(
            schedule.name, expected, {"next_run_at": next_run, "last_error": code}, [], now
        )
        if won:
            self._counters.of(schedule.queue).skipped_fires += 1
            log.warning("schedule %r skipped a fire: %s", schedule.name, exc)
        return False
