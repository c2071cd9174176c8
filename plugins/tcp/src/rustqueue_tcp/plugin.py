"""Entry point of the tcp plugin: offers the ``tcp`` transport (default ``0.0.0.0:6789``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl
from rustqueue_core.models import TransportSpec
from rustqueue_tcp.server import DEFAULT_MAX_LINE, TcpServer

if TYPE_CHECKING:
    from rustqueue_core.config import OptionRegistry
    from rustqueue_core.engine import RustQueue

DEFAULT_PORT = 6789


def _setting(config: Any, key: str, default: Any) -> Any:
    if config is None:
        return default
    value = config.get(key, default)
    return default if value is None else value


def create_server(engine: RustQueue, config: Any = None) -> TcpServer:
    """``TransportSpec.factory``: a server bound to ``server.host`` / ``server.tcp_port`` while entered."""
    return TcpServer(
        engine,
        host=str(_setting(config, "server.host", "0.0.0.0")),
        port=int(_setting(config, "server.tcp_port", DEFAULT_PORT)),
        max_line_bytes=int(_setting(config, "tcp.max_line_bytes", DEFAULT_MAX_LINE)),
    )


@hookimpl
def rustqueue_add_options(options: OptionRegistry) -> None:
    options.add(
        key="tcp.max_line_bytes",
        flag="--tcp-max-line-bytes",
        type=int,
        default=DEFAULT_MAX_LINE,
        metavar="N",
        help="longest accepted TCP JSON line; a longer one is refused and the connection closed",
    )


@hookimpl
def rustqueue_transports() -> TransportSpec:
    return TransportSpec(
        name="tcp",
        default_bind=f"0.0.0.0:{DEFAULT_PORT}",
        description="Pipelined newline-delimited JSON and binary batch frames",
        factory=create_server,
    )
