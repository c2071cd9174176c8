"""Entry point of the http plugin (group ``rustqueue``, name ``http``).

Only ``rustqueue_core`` and the standard library are imported here; Litestar and uvicorn load when
the transport starts or an app is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl
from rustqueue_core.models import TransportSpec

if TYPE_CHECKING:
    from rustqueue_core.plugins import PluginHost


@hookimpl
def rustqueue_addhooks(host: PluginHost) -> None:
    from rustqueue_http import hookspecs

    host.add_hookspecs(hookspecs)


def _http_transport(engine: Any, config: Any) -> Any:
    from rustqueue_http.server import serve_http

    return serve_http(engine, config)


@hookimpl
def rustqueue_transports() -> TransportSpec:
    return TransportSpec(
        name="http",
        default_bind="0.0.0.0:6790",
        description="HTTP REST API (wire-compatible with RustQueue 0.3), OpenAPI at /api/v1/openapi.json",
        factory=_http_transport,
    )
