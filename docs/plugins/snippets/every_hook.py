"""One small implementation of every rustqueue hook, quoted by docs/plugins/hooks.md.

tests/test_hooks_documented.py registers this module in a ``PluginHost``, exercises each hook and
checks that every code block of hooks.md is quoted verbatim from here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import msgspec

from rustqueue_core import (
    AuthError,
    Capabilities,
    HealthCheck,
    Job,
    JobEvent,
    NewJob,
    Principal,
    StorageSpec,
    TransportSpec,
    hookimpl,
)
from rustqueue_core.config import CommandRegistry, Config, OptionRegistry
from rustqueue_core.hookspecs import hookspec
from rustqueue_core.models import Credentials, WorkerInfo
from rustqueue_core.plugins import PluginHost

log = logging.getLogger("example")


# --- addhooks
class ExampleSpecs:
    @hookspec
    def rustqueue_example_routes(self, app_config: Any) -> Any:
        """A hook this plugin owns; other plugins implement it."""


@hookimpl
def rustqueue_addhooks(host: PluginHost) -> None:
    host.add_hookspecs(ExampleSpecs)


# --- add_options
@hookimpl
def rustqueue_add_options(options: OptionRegistry) -> None:
    options.add(
        key="example.batch_size",
        flag="--example-batch-size",
        env="RUSTQUEUE_EXAMPLE_BATCH_SIZE",
        type=int,
        default=100,
        help="events per flush",
    )


# --- add_commands
def configure_greet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")


def run_greet(args: argparse.Namespace, host: PluginHost) -> int:
    print(f"hello, {args.name}")
    return 0


@hookimpl
def rustqueue_add_commands(commands: CommandRegistry) -> None:
    commands.add("greet", "say hello", configure_greet, run_greet)


# --- configure
class ExampleConfig(msgspec.Struct, kw_only=True):
    batch_size: int = 100
    queues: list[str] = []


settings = ExampleConfig()


@hookimpl
def rustqueue_configure(config: Config) -> None:
    global settings
    settings = config.section("example", ExampleConfig)  # raises ConfigError on bad values


# --- storage_backends
def create_storage(url: str, options: Any) -> Any:
    from example_backend import ExampleStorage  # the heavy import happens here, not at load

    return ExampleStorage(url, options)


@hookimpl
def rustqueue_storage_backends() -> StorageSpec:
    return StorageSpec(
        name="example",
        schemes=("example",),
        description="an example backend",
        capabilities=Capabilities(durable=True, multi_process=True),
        factory=create_storage,
    )


# --- transports
@contextlib.asynccontextmanager
async def serve_ping(engine: Any, config: Config | None) -> AsyncIterator[str]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(f"pong {engine.state}\n".encode())
        await writer.drain()
        writer.close()

    port = config.get("example.ping_port", 0) if config else 0
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    host, bound = server.sockets[0].getsockname()[:2]
    try:
        yield f"{host}:{bound}"  # the address printed in the readiness line
    finally:
        server.close()
        await server.wait_closed()


@hookimpl
def rustqueue_transports() -> TransportSpec:
    return TransportSpec(
        name="ping", default_bind="127.0.0.1:0", description="answers pong", factory=serve_ping
    )


# --- lifespan
outbox: asyncio.Queue[Sequence[JobEvent]] = asyncio.Queue(maxsize=1000)
delivered: list[JobEvent] = []


@contextlib.asynccontextmanager
async def run_outbox() -> AsyncIterator[None]:
    async def drain() -> None:
        while True:
            delivered.extend(await outbox.get())

    task = asyncio.create_task(drain())
    try:
        yield
    finally:
        task.cancel()
        while not outbox.empty():  # flush what is left before storage closes
            delivered.extend(outbox.get_nowait())


@hookimpl
def rustqueue_lifespan(engine: Any) -> contextlib.AbstractAsyncContextManager[None]:
    return run_outbox()


# --- health
@hookimpl
def rustqueue_health(engine: Any) -> HealthCheck:
    backlog = outbox.qsize()
    if backlog > 900:
        return HealthCheck(component="example", state="degraded", detail=f"{backlog} batches waiting")
    return HealthCheck(component="example", state="ok", detail=f"{backlog} batches waiting")


# --- authenticate
TOKENS = {"s3cret": Principal(name="deployer", roles=("admin",))}


@hookimpl
def rustqueue_authenticate(credentials: Credentials) -> Principal | None:
    if credentials.token is None:
        return None  # abstain: another plugin (or the core default) decides
    principal = TOKENS.get(credentials.token)
    if principal is None:
        raise AuthError("Invalid token")
    return principal


# --- authorize
@hookimpl
def rustqueue_authorize(principal: Principal, action: str, queue: str | None) -> bool | None:
    if action.startswith("delete") and "admin" not in principal.roles:
        return False
    return None  # abstain


# --- before_push
@hookimpl
def rustqueue_before_push(jobs: Sequence[NewJob], principal: Principal | None) -> None:
    for job in jobs:
        metadata = job.options.metadata if isinstance(job.options.metadata, dict) else {}
        metadata["pushed_by"] = principal.name if principal else "anonymous"
        job.options.metadata = metadata


# --- worker_middleware
def make_timer(queue: str) -> Callable[[Job, Callable[[Job], Awaitable[Any]]], Awaitable[Any]]:
    async def timed(job: Job, call_next: Callable[[Job], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        try:
            return await call_next(job)
        finally:
            log.info("%s/%s took %.1f ms", queue, job.name, (time.perf_counter() - started) * 1000)

    return timed


@hookimpl
def rustqueue_worker_middleware(queue: str, worker: WorkerInfo) -> Any:
    return make_timer(queue)  # built once per worker start


# --- jobs_changed
@hookimpl
def rustqueue_jobs_changed(events: Sequence[JobEvent]) -> None:
    try:
        outbox.put_nowait(events)  # never block or await here
    except asyncio.QueueFull:
        log.warning("outbox full: dropped %d events", len(events))
