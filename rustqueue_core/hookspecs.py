"""The rustqueue plugin contract: every hook a plugin may implement.

Hooks are grouped in five sections: setup, providers, lifecycle, decisions and jobs. Each docstring says
when the hook is called, how often, on which thread or loop, what ``None`` means, and its flag.
Implementations may accept fewer arguments than the spec names, so hooks grow by adding arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from rustqueue_core.config import CommandRegistry, Config, OptionRegistry
    from rustqueue_core.engine import Engine
    from rustqueue_core.models import (
        Credentials,
        HealthCheck,
        JobEvent,
        NewJob,
        Principal,
        StorageSpec,
        TransportSpec,
        WorkerInfo,
    )
    from rustqueue_core.plugins import PluginHost

PROJECT = "rustqueue"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ============================================================================ setup


@hookspec(historic=True)
def rustqueue_addhooks(host: PluginHost) -> None:
    """Add hook specifications owned by a plugin (the http plugin adds ``rustqueue_http_routes``).

    Called at each plugin registration (historic), synchronously, on the registering thread.
    Use ``host.add_hookspecs(module)``.
    """


@hookspec(historic=True)
def rustqueue_add_options(options: OptionRegistry) -> None:
    """Declare command-line options, environment variables and config keys.

    Called once per CLI run between the pre-parse and the full parse (historic, so late plugins still
    get it). Call ``options.add(flag=..., env=..., key=..., type=..., default=..., help=...)``.
    """


@hookspec
def rustqueue_add_commands(commands: CommandRegistry) -> None:
    """Add CLI subcommands (collect-all). Called once when the CLI is built.

    Call ``commands.add(name, help, configure_parser, run)``; ``run(args, host)`` returns an exit code.
    """


@hookspec(historic=True)
def rustqueue_configure(config: Config) -> None:
    """Receive the merged configuration (file, environment, flags). Called once, after validation
    (historic). Claim a section with ``config.section("webhooks", WebhooksConfig)``; raise
    ``ConfigError`` to reject it, which stops ``serve`` with that message."""


# ============================================================================ providers


@hookspec
def rustqueue_storage_backends() -> StorageSpec | Sequence[StorageSpec] | None:
    """Offer storage backends (collect-all). Called once, lazily, to resolve a URL or list storage.

    Return one ``StorageSpec`` or several; ``None`` offers none. Must not open anything.
    """


@hookspec
def rustqueue_transports() -> TransportSpec | Sequence[TransportSpec] | None:
    """Offer network transports (collect-all). Called once at ``serve`` and for listing.

    ``TransportSpec.factory(engine, config)`` returns an async context manager that serves while
    entered and stops accepting on exit. ``None`` offers none.
    """


# ============================================================================ lifecycle


@hookspec
def rustqueue_lifespan(engine: Engine) -> Any:
    """Return an async context manager to run beside the engine, or ``None`` (collect-all).

    Called once, after storage opens and before transports accept, on the engine's loop. Entered in
    call order and exited in reverse at shutdown (after transports stop, before storage closes).
    """


@hookspec
def rustqueue_health(engine: Engine) -> HealthCheck | Sequence[HealthCheck] | None:
    """Report component health (collect-all). Called per health request and by ``rustqueue status``,
    on the loop; must not block. ``None`` reports nothing."""


# ============================================================================ decisions


@hookspec(firstresult=True)
def rustqueue_authenticate(credentials: Credentials) -> Principal | None:
    """Identify a caller (firstresult). Called per HTTP request, TCP ``auth`` command and WebSocket
    handshake, synchronously on the loop. Return a ``Principal`` to accept, ``None`` to abstain (the
    next implementation decides; the core default accepts anonymous callers), raise ``AuthError`` to
    reject. Keep it synchronous: a coroutine would count as an answer."""


@hookspec(firstresult=True)
def rustqueue_authorize(principal: Principal, action: str, queue: str | None) -> bool | None:
    """Allow (True) or deny (False) ``action`` on ``queue``; ``None`` abstains (firstresult).
    Called per request or command, synchronously on the loop. The core default allows."""


# ============================================================================ jobs


@hookspec
def rustqueue_before_push(jobs: Sequence[NewJob], principal: Principal | None) -> None:
    """Inspect or amend a push batch before validation and commit (collect-all).

    Called once per push call (a batch), on every push path (HTTP, TCP, embedded, schedules,
    follow-ups), on the loop. May amend ``job.options.metadata`` (trace context); raising rejects the
    whole batch. Skipped at no cost when no plugin implements it.
    """


@hookspec
def rustqueue_worker_middleware(queue: str, worker: WorkerInfo) -> Any:
    """Return a middleware ``async (job, call_next) -> result`` or ``None`` (collect-all).

    Called once per worker start, never per job; the host composes the chain once.
    """


@hookspec
def rustqueue_jobs_changed(events: Sequence[JobEvent]) -> None:
    """Receive the events of one committed transaction (collect-all).

    Called once per commit, on the engine's loop, after the commit. Must not block, await or raise:
    hand the batch to your own bounded queue. Skipped at no cost when no plugin implements it; each
    implementation is isolated, so one failing consumer does not starve the others.
    """
