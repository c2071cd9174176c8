"""All route handlers of the dashboard for one engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rustqueue_dashboard.api import api_route_handlers
from rustqueue_dashboard.assets import asset_route_handlers
from rustqueue_dashboard.state import state_for

if TYPE_CHECKING:
    from rustqueue_dashboard.settings import DashboardConfig


def dashboard_route_handlers(engine: Any, config: DashboardConfig) -> list[Any]:
    state = state_for(engine, config)
    # Capture log lines from the moment the app exists, also for an engine served without lifespans.
    state.attach_logs()
    api = api_route_handlers(engine, state, config.path_prefix)
    return [*api, *asset_route_handlers(config.path_prefix, getattr(engine, "host", None))]
