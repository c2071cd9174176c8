"""Entry point of the qrusty plugin (group ``rustqueue``, name ``qrusty``).

Only ``rustqueue_core`` and the standard library are imported here; Litestar, uvicorn and the
WebSocket machinery load when the transport starts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl
from rustqueue_core.models import TransportSpec
from rustqueue_qrusty.settings import DEFAULT_PORT, OPTIONS, storage_url_for_mode

if TYPE_CHECKING:
    from rustqueue_core.config import Config, OptionRegistry

logger = logging.getLogger("rustqueue.qrusty")


@hookimpl
def rustqueue_add_options(options: OptionRegistry) -> None:
    for key, env, kind, default, help_text in OPTIONS:
        flag = "--qrusty-port" if key == "qrusty.port" else None
        options.add(key=key, flag=flag, env=env, type=kind, default=default, help=help_text)


@hookimpl
def rustqueue_configure(config: Config) -> None:
    mode = config.get("qrusty.storage_mode")
    url = storage_url_for_mode(
        mode, {"storage.url": config.get("storage.url"), "storage.backend": config.get("storage.backend")}
    )
    if url is not None:
        config.set("storage.url", url, source="STORAGE_MODE")
        logger.warning("STORAGE_MODE=memory: messages are kept in memory only and lost on restart")


@hookimpl(optionalhook=True)
def rustqueue_http_routes(app_config: Any) -> Any:
    """qrusty's stats, time series, timings and recent log lines on the http port, for the dashboard."""
    from rustqueue_qrusty.dashboard_api import ROUTES

    return ROUTES


def _qrusty_transport(engine: Any, config: Any) -> Any:
    from rustqueue_qrusty.server import serve_qrusty

    return serve_qrusty(engine, config)


@hookimpl
def rustqueue_transports() -> TransportSpec:
    return TransportSpec(
        name="qrusty",
        default_bind=f"0.0.0.0:{DEFAULT_PORT}",
        description="qrusty-compatible HTTP and WebSocket API (qrusty 0.19 clients)",
        factory=_qrusty_transport,
    )
