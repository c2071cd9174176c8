"""Entry point of the dashboard plugin (group ``rustqueue``, name ``dashboard``).

Only ``rustqueue_core`` and the standard library are imported here; Litestar loads when the http
plugin builds its app and asks for routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl
from rustqueue_dashboard.settings import config_of_engine, dashboard_config

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

#: Where the http plugin puts the engine and the configuration in the Litestar app state.
ENGINE_STATE_KEY = "rustqueue_engine"
CONFIG_STATE_KEY = "rustqueue_config"


@hookimpl
def rustqueue_configure(config: Any) -> None:
    """Reject a bad ``[dashboard]`` section at startup, before anything listens."""
    dashboard_config(config)


@hookimpl
def rustqueue_http_routes(app_config: Any) -> list[Any] | None:
    """The dashboard's pages, assets and JSON API, under ``[dashboard] path_prefix``."""
    engine = app_config.state.get(ENGINE_STATE_KEY)
    if engine is None:
        return None
    # The app's configuration, else the engine's (an app built with ``create_app(engine)`` alone).
    raw = app_config.state.get(CONFIG_STATE_KEY)
    config = dashboard_config(raw) if raw is not None else config_of_engine(engine)
    if not config.enabled:
        return None
    from rustqueue_dashboard.routes import dashboard_route_handlers

    return dashboard_route_handlers(engine, config)


@hookimpl
def rustqueue_lifespan(engine: Any) -> AbstractAsyncContextManager[Any] | None:
    """While the engine serves: sample queue stats for the charts and keep recent log lines."""
    config = config_of_engine(engine)
    if not config.enabled:
        return None
    from rustqueue_dashboard.state import dashboard_lifespan

    return dashboard_lifespan(engine, config)
