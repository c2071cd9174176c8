"""Parse ``postgresql://user[:password]@host[:port]/db?schema=NAME&...`` into backend options.

Query options the backend reads (everything else is passed to the driver):

``schema``          schema holding the tables (default ``rustqueue``); created and migrated at open
``notify``          ``on`` (default) or ``off``: LISTEN/NOTIFY wake-ups, or polling only (for poolers
                    in transaction mode, which cannot keep a LISTEN session)
``poll_interval``   seconds between polls when wake-ups are off or the listener is reconnecting (0.5)
``pool_size``       pooled connections (10); ``max_overflow`` extra ones under bursts (10)
``connect_timeout`` seconds to wait for a connection at open (10)
``retry_timeout``   seconds an operation keeps retrying after the connection drops (60)
``statement_cache_size`` prepared statements kept per connection (100); 0 for poolers in transaction
                    mode that cannot keep prepared statements
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from rustqueue_core.errors import ConfigError
from rustqueue_postgres.schema import quote_schema

DEFAULT_SCHEMA = "rustqueue"


class PostgresOptions(msgspec.Struct, kw_only=True, frozen=True):
    #: SQLAlchemy URL with the asyncpg driver and without the backend's own options.
    sqlalchemy_url: str
    #: ``host:port/db`` for messages (never the password).
    display: str
    schema: str = DEFAULT_SCHEMA
    notify: bool = True
    poll_interval: float = 0.5
    pool_size: int = 10
    max_overflow: int = 10
    connect_timeout: float = 10.0
    retry_timeout: float = 60.0
    statement_cache_size: int = 100


_BOOLEAN = {"on": True, "true": True, "1": True, "yes": True}
_BOOLEAN.update({"off": False, "false": False, "0": False, "no": False})
_OWN = (
    "schema", "notify", "poll_interval", "pool_size", "max_overflow", "connect_timeout", "retry_timeout",
    "statement_cache_size",
)  # fmt: skip


def _number(name: str, value: Any, kind: type, minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"postgres storage: {name} must be a number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"postgres storage: {name} must be at least {minimum}, got {value!r}")
    return number


def parse_url(url: str, options: Mapping[str, Any] | None = None) -> PostgresOptions:
    """Backend options from the URL's query merged with ``options`` (explicit options win)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("postgresql", "postgres") and not scheme.startswith("postgresql+"):
        raise ConfigError(f"postgres storage: unsupported URL scheme {parts.scheme!r}")
    if not parts.hostname and not parts.path.strip("/"):
        raise ConfigError("postgres storage: the URL needs a host or a database, e.g. postgresql://user@host/db")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged: dict[str, Any] = {k: v for k, v in query.items() if k in _OWN}
    merged.update({k: v for k, v in (options or {}).items() if k in _OWN})
    driver_query = [(k, v) for k, v in query.items() if k not in _OWN]
    sqlalchemy_url = urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(driver_query), ""))

    notify_text = str(merged.get("notify", "on")).strip().lower()
    if notify_text not in _BOOLEAN:
        raise ConfigError(f"postgres storage: notify must be 'on' or 'off', got {merged['notify']!r}")
    schema = str(merged.get("schema", DEFAULT_SCHEMA))
    quote_schema(schema)  # validates
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    database = parts.path.strip("/") or (parts.username or "postgres")
    return PostgresOptions(
        sqlalchemy_url=sqlalchemy_url,
        display=f"{host}:{port}/{database}",
        schema=schema,
        notify=_BOOLEAN[notify_text],
        poll_interval=_number("poll_interval", merged.get("poll_interval", 0.5), float, 0.01),
        pool_size=_number("pool_size", merged.get("pool_size", 10), int, 1),
        max_overflow=_number("max_overflow", merged.get("max_overflow", 10), int, 0),
        connect_timeout=_number("connect_timeout", merged.get("connect_timeout", 10.0), float, 0.1),
        retry_timeout=_number("retry_timeout", merged.get("retry_timeout", 60.0), float, 0.0),
        statement_cache_size=_number("statement_cache_size", merged.get("statement_cache_size", 100), int, 0),
    )
