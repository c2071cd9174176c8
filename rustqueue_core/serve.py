"""``rustqueue serve``: open storage, enter lifespans, enter transports, wait for a signal, unwind.

Shutdown runs in reverse: transports stop accepting, lifespans exit (webhooks flush), the engine
drains in-flight work for up to the grace period and closes storage. SIGINT and SIGTERM both drain.
A lifespan or transport that fails to start stops the server after unwinding what was entered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
import time
from contextlib import AsyncExitStack
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

logger = logging.getLogger("rustqueue.serve")

SERVER_HINT = "pip install 'rustqueue[server]'"


def serve(host: PluginHost, config: Config) -> int:
    """Run until SIGINT/SIGTERM; return the process exit code."""
    try:
        url = storage_url_from_config(config)
        settings = engine_settings_from_config(config)
        path = sqlite_file_from_url(url)
        if path is not None and str(path.parent) not in ("", "."):
            path.parent.mkdir(parents=True, exist_ok=True)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for row in host.describe():
        if row.status == "active":
            hooks = ", ".join(h.removeprefix("rustqueue_") for h in row.hooks) or "no hooks"
            logger.info("plugin %s (%s %s): %s", row.name, row.distribution or "-", row.version or "-", hooks)
    try:
        return asyncio.run(_serve(host, config, url, settings))
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

    def on_signal() -> None:
        if stop.is_set():  # a second signal: the operator does not want to wait for the drain
            logger.warning("second signal: exiting without draining")
            os._exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
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
        if getattr(engine, "state", "closed") != "closed":
            try:
                await engine.close(grace)
            except Exception:
                logger.exception("closing the engine failed")
    logger.info("stopped")
    return 0
