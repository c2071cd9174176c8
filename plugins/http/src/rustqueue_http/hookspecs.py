"""Hooks owned by the http plugin, added to the host through ``rustqueue_addhooks``.

Importing this module must stay cheap (no Litestar): it is loaded with the entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rustqueue_core.hookspecs import hookspec


@hookspec
def rustqueue_http_routes(app_config: Any) -> Sequence[Any] | Any | None:
    """Contribute Litestar route handlers (or routers) to the HTTP app (collect-all).

    Called once per HTTP app, while it is built, on the loop that serves it. ``app_config`` is the
    ``litestar.config.app.AppConfig`` under construction; ``app_config.state["rustqueue_engine"]`` is the
    engine and ``app_config.state["rustqueue_config"]`` the configuration (or ``None``). Return one
    handler, a sequence of them, or ``None`` to add nothing. Paths are absolute (``/api/v1/...``). Routes
    under the protected prefixes (``/api/v1/queues``, ``/jobs``, ``/flows``, ``/schedules``, ``/webhooks``,
    ``/events``, ``/dashboard``) require credentials when an auth plugin is active; mark a handler
    ``opt={"rustqueue_protected": True}`` or ``{"rustqueue_public": True}`` to decide explicitly. Plugins
    that also work without http mark their implementation ``optionalhook=True``.
    """
