"""rustqueue: background jobs without infrastructure.

Embed it::

    from rustqueue_core import RustQueue
    rq = await RustQueue.sqlite("jobs.db").build()
    job_id = await rq.push("emails", "send-welcome", {"to": "a@b.c"})
    await rq.run_worker("emails", handler, concurrency=8)

Public names only; nothing heavy is imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rustqueue_core.errors import (
    AuthError,
    Closed,
    ConfigError,
    DuplicateKey,
    InternalError,
    InvalidState,
    JobNotFound,
    LeaseLost,
    NotReady,
    Overloaded,
    PluginError,
    QueueExists,
    QueueNotFound,
    QueuePaused,
    RateLimited,
    RustQueueError,
    ScheduleNotFound,
    Unauthorized,
    ValidationError,
)
from rustqueue_core.hookspecs import hookimpl
from rustqueue_core.models import (
    Capabilities,
    HealthCheck,
    Job,
    JobEvent,
    JobOptions,
    NewJob,
    Principal,
    QueueConfig,
    Schedule,
    StorageSpec,
    TransportSpec,
)

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Capabilities",
    "Closed",
    "ConfigError",
    "DeadLetter",
    "DuplicateKey",
    "HealthCheck",
    "InternalError",
    "InvalidState",
    "Job",
    "JobEvent",
    "JobNotFound",
    "JobOptions",
    "LeaseLost",
    "ManualClock",
    "NewJob",
    "NotReady",
    "Overloaded",
    "PluginError",
    "Principal",
    "QueueConfig",
    "QueueExists",
    "QueueNotFound",
    "QueuePaused",
    "RateLimited",
    "Retry",
    "RustQueue",
    "RustQueueError",
    "Schedule",
    "ScheduleNotFound",
    "StorageSpec",
    "SyncRustQueue",
    "TransportSpec",
    "Unauthorized",
    "ValidationError",
    "WorkerRegistry",
    "Workflow",
    "__version__",
    "hookimpl",
]

if TYPE_CHECKING:  # the lazily imported names, visible to type checkers
    from rustqueue_core.clock import ManualClock
    from rustqueue_core.engine import RustQueue
    from rustqueue_core.sync import SyncRustQueue
    from rustqueue_core.worker import DeadLetter, Retry
    from rustqueue_core.workflow import WorkerRegistry, Workflow

_LAZY = {
    "RustQueue": "rustqueue_core.engine",
    "SyncRustQueue": "rustqueue_core.sync",
    "ManualClock": "rustqueue_core.clock",
    "Retry": "rustqueue_core.worker",
    "DeadLetter": "rustqueue_core.worker",
    "WorkerRegistry": "rustqueue_core.workflow",
    "Workflow": "rustqueue_core.workflow",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rustqueue_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
