"""Clients of a rustqueue server, on the standard library and msgspec only.

* :class:`RustQueueClient` / :class:`AsyncRustQueueClient`: the HTTP API (port 6790).
* :class:`TcpClient` / :class:`AsyncTcpClient`: the TCP protocol (port 6789), with pipelining.

Server errors raise the typed classes of :mod:`rustqueue_core.errors` (by wire code); network
failures raise :class:`RustQueueConnectionError`, a ``ConnectionError``.
"""

from __future__ import annotations

from rustqueue_core.client._common import RustQueueConnectionError, ServerError, error_from_wire
from rustqueue_core.client.http import AsyncRustQueueClient, RustQueueClient
from rustqueue_core.client.tcp import AsyncTcpClient, TcpClient, parse_tcp_url

__all__ = [
    "AsyncRustQueueClient",
    "AsyncTcpClient",
    "RustQueueClient",
    "RustQueueConnectionError",
    "ServerError",
    "TcpClient",
    "error_from_wire",
    "parse_tcp_url",
]
