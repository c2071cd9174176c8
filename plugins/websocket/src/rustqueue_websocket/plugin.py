"""Entry point of the websocket plugin (group ``rustqueue``, name ``websocket``).

The host registers one ``WebSocketPlugin`` per plugin host (``rustqueue_plugin_factory``): its subscribers
are per engine. With
the http plugin loaded, ``/api/v1/events`` is served on the HTTP port; without it the plugin offers a
listener of its own (``websocket.port``, default 6791).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl
from rustqueue_core.models import JobEvent, TransportSpec
from rustqueue_websocket.broker import DEFAULT_QUEUE_SIZE, EventBroker

if TYPE_CHECKING:
    from rustqueue_core.config import Config
    from rustqueue_core.plugins import PluginHost

DEFAULT_PORT = 6791


class WebSocketPlugin:
    def __init__(self, host: PluginHost | None = None, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.host = host
        self.broker = EventBroker(queue_size)

    @hookimpl
    def rustqueue_configure(self, config: Config) -> None:
        self.broker.queue_size = int(config.get("websocket.queue_size", DEFAULT_QUEUE_SIZE))

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        self.broker.publish(events)

    @hookimpl(optionalhook=True)
    def rustqueue_http_routes(self, app_config: Any) -> list[Any]:
        from rustqueue_websocket.routes import event_route_handlers

        return event_route_handlers(self)

    @hookimpl
    def rustqueue_transports(self) -> TransportSpec | None:
        if self.http_present():
            return None
        return TransportSpec(
            name="websocket",
            default_bind=f"0.0.0.0:{DEFAULT_PORT}",
            description="job event stream at /api/v1/events (own listener: the http plugin is not loaded)",
            factory=self._serve,
        )

    def http_present(self) -> bool:
        """Whether the http plugin's hook spec is on the host (then the stream rides on its port)."""
        if self.host is None:
            return False
        caller = getattr(self.host.hook, "rustqueue_http_routes", None)
        return caller is not None and getattr(caller, "spec", None) is not None

    def _serve(self, engine: Any, config: Config | None) -> Any:
        from rustqueue_websocket.listener import serve_events

        host = "0.0.0.0"
        port = DEFAULT_PORT
        if config is not None:
            host = str(config.get("websocket.host", config.get("server.host", host)))
            port = int(config.get("websocket.port", port))
        return serve_events(self, host, port)


def rustqueue_plugin_factory(host: PluginHost) -> WebSocketPlugin:
    return WebSocketPlugin(host)


def find_plugin(host: Any) -> WebSocketPlugin | None:
    """The websocket plugin object registered on ``host`` (whatever name it was registered under)."""
    for plugin in host.pm.get_plugins():
        if isinstance(plugin, WebSocketPlugin):
            return plugin
    return None
