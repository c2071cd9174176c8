"""``rustqueue serve``: open storage, enter lifespans, enter transports, wait for a signal, unwind.

Shutdown runs in reverse: transports stop accepting, lifespans exit (webhooks flush), the engine
drains in-flight work for up to the grace period and closes storage. SIGINT and SIGTERM both drain.
A lifespan or transport that fails to start stops the server after unwinding what was entered.

The event loop is uvloop when it is installed (``server.event_loop = "auto"``, the default), else
asyncio's own; ``"asyncio"`` forces the standard loop, ``"uvloop"`` requires uvloop. The environment
variable ``RUSTQUEUE_EVENT_LOOP`` overrides the config file. Once started, the objects built so far are
frozen out of the garbage collector and its young generation is collected less often
(``server.gc_tuning``, environment ``RUSTQUEUE_GC_TUNING``; true by default).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from types import FrameType
from typing import Any

from rustqueue_core.config import (
    Config,
    engine_settings_from_config,
    sqlite_file_from_url,
    storage_url_from_config,
)
from rustqueue_core.errors import ConfigError, PluginError, RustQueueError
from rustqueue_core.models import TransportSpec
from rustqueue_core.plugins import PluginHost, PluginLoadError
from rustqueue_core.signals import REPEAT_WINDOW_S, ShutdownSignals

logger = logging.getLogger("rustqueue.serve")

SERVER_HINT = "pip install 'rustqueue[server]'"
EVENT_LOOPS = ("auto", "asyncio", "uvloop")
EVENT_LOOP_ENV = "RUSTQUEUE_EVENT_LOOP"
GC_TUNING_ENV = "RUSTQUEUE_GC_TUNING"


def loop_factory(config: Config) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory ``serve`` runs on: uvloop's when chosen (or ``auto`` and installed),
    None for asyncio's default loop."""
    choice = str(os.environ.get(EVENT_LOOP_ENV) or config.get("server.event_loop", "auto")).strip().lower()
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"server.event_loop must be one of {', '.join(EVENT_LOOPS)}, not {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "server.event_loop is 'uvloop' but uvloop is not installed (pip install uvloop)"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


#: Allocations (net, of tracked objects) between two youngest-generation collections while serving.
GC_THRESHOLD0 = 50_000


def tune_gc(config: Config) -> bool:
    """Once everything is imported and built: move those objects out of the collector's sight
    (``gc.freeze``) and collect the young generation less often. With the defaults, a full collection
    rescans the whole application and every cached job every few hundred milliseconds under load, and
    each one stops the server for tens of milliseconds. ``server.gc_tuning = false`` keeps the
    interpreter's defaults. True when tuned."""
    value = os.environ.get(GC_TUNING_ENV) or config.get("server.gc_tuning", True)
    if str(value).strip().lower() in ("false", "0", "no", "off"):
        return False
    gc.collect()
    gc.freeze()
    _, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(max(GC_THRESHOLD0, gc.get_threshold()[0]), threshold1, threshold2)
    return True


def serve(host: PluginHost, config: Config) -> int:
    """Run until SIGINT/SIGTERM; return the process exit code."""
    try:
        url = storage_url_from_config(config)
        settings = engine_settings_from_config(config)
        path = sqlite_file_from_url(url)
        if path is not None and str(path.parent) not in ("", "."):
            path.parent.mkdir(parents=True, exist_ok=True)
        factory = loop_factory(config)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for row in host.describe():
        if row.status == "active":
            hooks = ", ".join(h.removeprefix("rustqueue_") for h in row.hooks) or "no hooks"
            logger.info("plugin %s (%s %s): %s", row.name, row.distribution or "-", row.version or "-", hooks)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_serve(host, config, url, settings))
    except (PluginError, RustQueueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Storage that cannot open, a port in use...: one line; the traceback at --log-level debug.
        logger.debug("serve failed", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _address(entered: Any, spec: TransportSpec, config: Config) -> str:
    """What a transport reports as its address: a ``"host:port"`` string or an ``address`` attribute
    from its ``__aenter__``; otherwise ``server.host`` and ``server.<name>_port`` over its default bind."""
    value = entered if isinstance(entered, str) else getattr(entered, "address", None)
    if isinstance(value, tuple) and len(value) >= 2:
        return f"{value[0]}:{value[1]}"
    if value:
        return str(value)
    default_host, _, default_port = spec.default_bind.rpartition(":")
    bind_host = config.get("server.host", default_host)
    port = config.get(f"server.{spec.name}_port", default_port)
    return f"{bind_host}:{port}" if bind_host and port != "" else spec.default_bind


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _is_loopback(bind_host: str) -> bool:
    try:
        return ipaddress.ip_address(bind_host).is_loopback
    except ValueError:
        return bind_host == "localhost"


async def _serve(host: PluginHost, config: Config, url: str, settings: Any) -> int:
    from rustqueue_core.builder import RustQueueBuilder

    engine = RustQueueBuilder(url).settings(settings).host(host).create()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    logger.debug("event loop: %s.%s", type(loop).__module__, type(loop).__qualname__)

    signals = ShutdownSignals()

    def on_signal(sig: signal.Signals) -> None:
        kind = signals.classify(sig)
        if kind == "same":
            logger.info(
                "%s again within %.1f s: taken as the same request (a launcher such as `uv run` forwarded it); "
                "send it again to exit without draining",
                sig.name,
                REPEAT_WINDOW_S,
            )
            return
        if kind == "force":  # the operator does not want to wait for the drain
            logger.warning("second signal: exiting without draining")
            os._exit(130)
        stop.set()

    def after_loop(signum: int, frame: FrameType | None) -> None:
        """Once the loop's handlers are gone: the drain is over or under way, so only a deliberate
        second signal (not a forwarded copy of the first) may cut the exit short."""
        if signals.classify(signum) == "force":
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    grace = float(config.get("server.shutdown_grace_seconds", 30.0))
    try:
        async with AsyncExitStack() as stack:
            # Transports listen while the engine recovers, so clients meet the startup gate (NOT_READY,
            # 503 + Retry-After) rather than a refused connection; the stack stops them before close.
            stack.push_async_callback(engine.close, grace)
            await engine.storage.open()  # idempotent; start() finds it open, reads are served from now on
            ready: list[str] = []
            for name, spec in host.named_transports():
                started = time.perf_counter()
                try:
                    entered = await stack.enter_async_context(spec.factory(engine, config))
                except Exception as exc:
                    raise PluginLoadError(
                        name,
                        exc,
                        during=f"start transport {spec.name!r}",
                        label=host.distribution_label(name),
                    ) from exc
                ready.append(f"{spec.name} on {_address(entered, spec, config)}")
                logger.debug("transport %s started in %.0f ms", spec.name, (time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await engine.start(lifespans=True)
            logger.debug("engine started in %.0f ms", _elapsed_ms(started))
            tune_gc(config)
            if ready:
                bind_host = str(config.get("server.host", "0.0.0.0"))
                if not _is_loopback(bind_host) and not config.get("auth.enabled", False):
                    logger.warning(
                        "serving on %s without authentication: anyone who can reach it may push and "
                        "delete jobs (set [auth] enabled = true with the auth plugin, or --host 127.0.0.1)",
                        bind_host,
                    )
                print(f"rustqueue ready: {', '.join(ready)} (storage {url})", flush=True)
            else:
                print(
                    f"rustqueue ready: no transport installed; engine and scheduler running on {url}. "
                    f"To serve clients: {SERVER_HINT}",
                    flush=True,
                )
            await stop.wait()
            logger.info("shutting down (grace %.0f s)", grace)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            if signals.received:  # a launcher's copy of it may still be on its way
                signal.signal(sig, after_loop)  # stays installed until the process exits
        if getattr(engine, "state", "closed") != "closed":
            try:
                await engine.close(grace)
            except Exception:
                logger.exception("closing the engine failed")
    logger.info("stopped")
    return 0
