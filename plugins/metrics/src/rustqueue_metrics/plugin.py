"""Entry point of the metrics plugin (``rustqueue_metrics.plugin``).

Imports only the core and the standard library at module level; prometheus_client and Litestar are
imported when the lifespan starts and when routes are collected.

Per-engine state: ``rustqueue_lifespan`` builds one :class:`~rustqueue_metrics.collector.EngineMetrics`
(its own ``CollectorRegistry``) and registers an :class:`EngineBinding` into that engine's plugin host
for ``rustqueue_jobs_changed`` and ``rustqueue_worker_middleware``, so two engines in one process
never mix their numbers. Routes and the HTTP middleware find the metrics of the app's engine
(``app_config.state``) per request.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from rustqueue_core import RustQueueError, hookimpl
from rustqueue_core.plugins import bind_to_engine
from rustqueue_metrics.config import MetricsConfig

if TYPE_CHECKING:
    from rustqueue_core.models import JobEvent, WorkerInfo
    from rustqueue_metrics.collector import EngineMetrics

#: Where the http plugin puts the engine in the Litestar app state.
ENGINE_STATE_KEY = "rustqueue_engine"

_METRICS: weakref.WeakKeyDictionary[Any, EngineMetrics] = weakref.WeakKeyDictionary()


def metrics_for(engine: Any) -> EngineMetrics | None:
    """The metrics of ``engine`` while the plugin's lifespan runs for it."""
    return _METRICS.get(engine)


def config_of(engine: Any) -> MetricsConfig:
    host = getattr(engine, "host", None)
    config = getattr(host, "config", None) if host is not None else None
    if config is None:
        return MetricsConfig()
    return config.section("metrics", MetricsConfig).validate()  # type: ignore[no-any-return]


class EngineBinding:
    """Hook implementations bound to one engine's metrics; registered for the lifespan's duration."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self.metrics = metrics

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        self.metrics.observe_events(events)

    @hookimpl
    def rustqueue_worker_middleware(self, queue: str, worker: WorkerInfo) -> Any:
        return self.metrics.job_middleware(queue)


class MetricsPlugin:
    """The plugin; ``config`` overrides the configuration file's ``[metrics]`` section."""

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config.validate() if config is not None else None

    @hookimpl
    def rustqueue_configure(self, config: Any) -> None:
        if self.config is None:
            config.section("metrics", MetricsConfig).validate()

    @hookimpl
    def rustqueue_lifespan(self, engine: Any) -> contextlib.AbstractAsyncContextManager[EngineMetrics]:
        return self.run(engine)

    @contextlib.asynccontextmanager
    async def run(self, engine: Any) -> AsyncIterator[EngineMetrics]:
        from rustqueue_metrics.collector import EngineMetrics

        metrics = EngineMetrics(engine, self.config or config_of(engine))
        with contextlib.suppress(RustQueueError):  # not ready yet: the first scrape sets the baseline
            await metrics.count_schedule_fires()  # baseline: fires from now on are counted
        binding = EngineBinding(metrics)
        detach = bind_to_engine(engine, binding, f"metrics-engine-{id(binding):x}")
        previous = _METRICS.get(engine)
        _METRICS[engine] = metrics
        try:
            yield metrics
        finally:
            detach()
            if previous is not None:
                _METRICS[engine] = previous
            else:
                _METRICS.pop(engine, None)

    @hookimpl(optionalhook=True)
    def rustqueue_http_routes(self, app_config: Any) -> list[Any]:
        from rustqueue_metrics.routes import http_metrics_middleware, metrics_route_handlers

        engine = app_config.state.get(ENGINE_STATE_KEY)
        config = self.config or config_of(engine)

        def resolve() -> EngineMetrics | None:
            return metrics_for(engine)

        # Every request of the app is counted and timed, not only the metrics routes.
        app_config.middleware.append(http_metrics_middleware(resolve))
        return metrics_route_handlers(resolve, config)


_default = MetricsPlugin()


@hookimpl
def rustqueue_configure(config: Any) -> None:
    _default.rustqueue_configure(config)


@hookimpl
def rustqueue_lifespan(engine: Any) -> contextlib.AbstractAsyncContextManager[EngineMetrics]:
    return _default.run(engine)


@hookimpl(optionalhook=True)
def rustqueue_http_routes(app_config: Any) -> list[Any]:
    return _default.rustqueue_http_routes(app_config)
