"""Entry point of the webhooks plugin (``rustqueue_webhooks.plugin``).

Imports only the core and the standard library at module level; httpx and Litestar are imported
when the service starts and when routes are collected.

Per-engine state: ``rustqueue_lifespan`` builds one :class:`~rustqueue_webhooks.service.WebhookService`
for its engine and registers an :class:`EngineBinding` into that engine's plugin host. The binding
implements ``rustqueue_jobs_changed`` for that engine alone, so two engines in one process never see
each other's events. Routes find the service of the app's engine (``app_config.state``) per request,
so an app built before the lifespan starts still serves them.

Embedding: register ``WebhooksPlugin(WebhooksConfig(enabled=True, ...))`` to configure it in code.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl
from rustqueue_core.models import HealthCheck
from rustqueue_core.plugins import bind_to_engine
from rustqueue_webhooks.config import WebhooksConfig

if TYPE_CHECKING:
    from rustqueue_core.models import JobEvent
    from rustqueue_webhooks.service import WebhookService

STORE_FILENAME = "rustqueue-webhooks.db"
#: Where the http plugin puts the engine in the Litestar app state.
ENGINE_STATE_KEY = "rustqueue_engine"


def config_of(engine: Any) -> WebhooksConfig:
    """The ``[webhooks]`` section of the engine's configuration; defaults when embedded."""
    host = getattr(engine, "host", None)
    config = getattr(host, "config", None) if host is not None else None
    if config is None:
        return WebhooksConfig()
    return config.section("webhooks", WebhooksConfig).validate()  # type: ignore[no-any-return]


def default_store_path(engine: Any) -> str:
    """Beside the SQLite job store when there is one, else in the working directory."""
    storage = getattr(engine, "storage", None)
    for attr in ("path", "db_path", "filename"):
        value = getattr(storage, attr, None)
        if isinstance(value, str | os.PathLike) and str(value) not in ("", ":memory:"):
            return os.path.join(os.path.dirname(os.path.abspath(os.fspath(value))), STORE_FILENAME)
    return os.path.abspath(STORE_FILENAME)


class EngineBinding:
    """Hook implementations bound to one engine's service; registered for the lifespan's duration."""

    def __init__(self, service: WebhookService) -> None:
        self.service = service

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        self.service.on_events(events)


def _no_op() -> None:
    pass


class WebhooksPlugin:
    """The plugin; ``config`` overrides the configuration file's ``[webhooks]`` section."""

    def __init__(self, config: WebhooksConfig | None = None, *, transport: Any = None) -> None:
        self.config = config.validate() if config is not None else None
        self.transport = transport

    @hookimpl
    def rustqueue_configure(self, config: Any) -> None:
        # Validate early so that a bad section stops ``serve`` before anything starts.
        if self.config is None:
            config.section("webhooks", WebhooksConfig).validate()

    @hookimpl
    def rustqueue_lifespan(self, engine: Any) -> contextlib.AbstractAsyncContextManager[WebhookService]:
        return self.run(engine)

    @hookimpl
    def rustqueue_health(self, engine: Any) -> HealthCheck | None:
        from rustqueue_webhooks.service import service_for

        service = service_for(engine)
        if service is None or not service.running:
            return None
        problem = service.health_problem()
        detail = (
            f"{len(service.list_webhooks())} webhooks; {service.delivered_total} delivered, "
            f"{service.failed_total} failed, {service.dropped_events_total} events dropped"
        )
        return HealthCheck(
            component="webhooks",
            state="down" if problem else "ok",
            detail=f"{problem}; {detail}" if problem else detail,
        )

    @hookimpl(optionalhook=True)
    def rustqueue_http_routes(self, app_config: Any) -> list[Any]:
        from rustqueue_webhooks.routes import webhook_route_handlers
        from rustqueue_webhooks.service import service_for

        engine = app_config.state.get(ENGINE_STATE_KEY)
        return webhook_route_handlers(
            lambda: service_for(engine), lambda: getattr(engine, "state", "ready") == "starting"
        )

    @contextlib.asynccontextmanager
    async def run(self, engine: Any) -> AsyncIterator[WebhookService]:
        from rustqueue_webhooks.service import WebhookService, bind_service, service_for

        config = self.config or config_of(engine)
        store_path = config.store_path or default_store_path(engine)
        service = WebhookService(config, store_path, transport=self.transport)
        await service.start()
        # Disabled: no event consumer at all, so the engine's hot path stays free.
        binding = EngineBinding(service) if service.enabled else None
        detach = bind_to_engine(engine, binding, f"webhooks-engine-{id(binding):x}") if binding else _no_op
        previous = service_for(engine)
        bind_service(engine, service)
        try:
            yield service
        finally:
            detach()
            bind_service(engine, previous)
            await service.stop()


_default = WebhooksPlugin()


@hookimpl
def rustqueue_configure(config: Any) -> None:
    _default.rustqueue_configure(config)


@hookimpl
def rustqueue_lifespan(engine: Any) -> contextlib.AbstractAsyncContextManager[WebhookService]:
    return _default.run(engine)


@hookimpl(optionalhook=True)
def rustqueue_http_routes(app_config: Any) -> list[Any]:
    return _default.rustqueue_http_routes(app_config)


@hookimpl
def rustqueue_health(engine: Any) -> HealthCheck | None:
    return _default.rustqueue_health(engine)
