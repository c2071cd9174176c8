"""Typed errors of the engine. Each class name is the CamelCase of its wire code."""

from __future__ import annotations

from typing import Any, ClassVar


class RustQueueError(Exception):
    """Base class of every engine error. ``code`` is the wire code, ``status`` the HTTP status."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class ValidationError(RustQueueError):
    code = "VALIDATION_ERROR"
    status = 400

    def __init__(self, message: str, *, index: int | None = None, **details: Any) -> None:
        # The wire message carries the original's prefix; `reason` keeps the bare text.
        self.reason = message
        self.index = index
        text = f"Validation error: {message}"
        if index is not None:
            text = f"Validation error: item {index}: {message}"
        super().__init__(text, index=index, **details)


class JobNotFound(RustQueueError):
    code = "JOB_NOT_FOUND"
    status = 404

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Job '{job_id}' not found", job_id=job_id)


class ScheduleNotFound(RustQueueError):
    code = "SCHEDULE_NOT_FOUND"
    status = 404

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Schedule not found: {name}", name=name)


class QueueNotFound(RustQueueError):
    code = "QUEUE_NOT_FOUND"
    status = 404

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(f"Queue '{queue}' not found", queue=queue)


class QueueExists(RustQueueError):
    code = "QUEUE_EXISTS"
    status = 409

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(f"Queue '{queue}' already exists", queue=queue)


# Rust Debug spelling of states, used by the original's error messages.
STATE_DEBUG = {
    "created": "Created",
    "waiting": "Waiting",
    "delayed": "Delayed",
    "active": "Active",
    "completed": "Completed",
    "failed": "Failed",
    "dlq": "Dlq",
    "cancelled": "Cancelled",
    "blocked": "Blocked",
}


def _expected_text(expected: tuple[str, ...]) -> str:
    names = [STATE_DEBUG.get(s, s) for s in expected]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + ", or " + names[-1]


class InvalidState(RustQueueError):
    code = "INVALID_STATE"
    status = 409

    def __init__(self, current: str, expected: tuple[str, ...], job_id: str | None = None) -> None:
        self.current = current
        self.expected = expected
        self.job_id = job_id
        super().__init__(
            f"Job is in invalid state '{STATE_DEBUG.get(current, current)}' for operation "
            f"(expected: {_expected_text(expected)})",
            current=current,
            expected=list(expected),
        )


class DuplicateKey(RustQueueError):
    code = "DUPLICATE_KEY"
    status = 409

    def __init__(self, key: str, existing_id: str | None, *, index: int | None = None) -> None:
        self.key = key
        self.existing_id = existing_id
        self.index = index
        super().__init__(f"Duplicate unique key '{key}'", key=key, existing_id=existing_id, index=index)


class QueuePaused(RustQueueError):
    code = "QUEUE_PAUSED"
    status = 503

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(f"Queue '{queue}' is paused", queue=queue)


class RateLimited(RustQueueError):
    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str = "Rate limit exceeded", *, retry_after_ms: int = 0, **details: Any):
        self.retry_after_ms = retry_after_ms
        super().__init__(message, retry_after_ms=retry_after_ms, **details)


class LeaseLost(RustQueueError):
    code = "LEASE_LOST"
    status = 409

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Lease on job '{job_id}' is no longer held by this delivery", job_id=job_id)


class NotReady(RustQueueError):
    code = "NOT_READY"
    status = 503

    def __init__(self, message: str = "Engine is starting", retry_after_ms: int = 1000) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(message, retry_after_ms=retry_after_ms)


class Overloaded(RustQueueError):
    code = "OVERLOADED"
    status = 503

    def __init__(self, message: str = "Server is under critical memory pressure", retry_after_ms: int = 1000):
        self.retry_after_ms = retry_after_ms
        super().__init__(message, retry_after_ms=retry_after_ms)


class Closed(RustQueueError):
    code = "CLOSED"
    status = 503

    def __init__(self, message: str = "Engine is closed") -> None:
        super().__init__(message)


class InternalError(RustQueueError):
    code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(f"Internal error: {message}")


class Unauthorized(RustQueueError):
    code = "UNAUTHORIZED"
    status = 401


class Forbidden(RustQueueError):
    """An authenticated caller that ``rustqueue_authorize`` does not allow to do this."""

    code = "FORBIDDEN"
    status = 403

    def __init__(self, action: str, queue: str | None = None) -> None:
        self.action = action
        self.queue = queue
        where = f" on queue '{queue}'" if queue else ""
        super().__init__(f"Not allowed: {action}{where}", action=action, queue=queue)


class AuthError(Unauthorized):
    """Raised by ``rustqueue_authenticate`` implementations to reject credentials."""


class PluginError(RustQueueError):
    """A plugin failed to load, register or start. The message names the plugin and the way out."""

    code = "PLUGIN_ERROR"
    status = 500


class ConfigError(RustQueueError):
    """A configuration file, environment variable or builder setting is invalid."""

    code = "VALIDATION_ERROR"
    status = 400


ERRORS_BY_CODE: dict[str, type[RustQueueError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        JobNotFound,
        ScheduleNotFound,
        QueueNotFound,
        QueueExists,
        InvalidState,
        DuplicateKey,
        QueuePaused,
        RateLimited,
        LeaseLost,
        NotReady,
        Overloaded,
        Closed,
        InternalError,
        Unauthorized,
        Forbidden,
    )
}
