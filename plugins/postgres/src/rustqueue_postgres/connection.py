"""Connection errors: which ones a retry can cure, and clear messages for the ones it cannot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg

from rustqueue_core.errors import InternalError, ValidationError

#: Server-side conditions after which the same transaction can simply be run again.
_RETRYABLE_POSTGRES = (
    asyncpg.exceptions.PostgresConnectionError,  # class 08: the connection broke
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
)

#: Keyword arguments of ``asyncpg.connect`` the listener and leader connections take from the URL.
_CONNECT_KEYS = ("host", "port", "user", "password", "database", "ssl", "direct_tls", "server_settings")


class StorageUnavailable(InternalError):
    """PostgreSQL cannot be reached, or refused the credentials, when the storage opens."""


class NulCharacter(ValidationError):
    """PostgreSQL text cannot hold U+0000 (names, keys, tags, errors); JSON payloads can."""

    def __init__(self) -> None:
        super().__init__("PostgreSQL storage cannot store the NUL character (\\u0000) in text fields")


def has_nul_error(error: BaseException) -> bool:
    return any(isinstance(e, asyncpg.exceptions.UntranslatableCharacterError) for e in chain(error))


def chain(error: BaseException) -> Iterator[BaseException]:
    """The error, its causes and contexts, and SQLAlchemy's wrapped driver errors."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__, getattr(current, "orig", None)])


def is_retryable(error: BaseException) -> bool:
    for item in chain(error):
        if isinstance(item, (*_RETRYABLE_POSTGRES, OSError, asyncio.TimeoutError, ConnectionError)):
            return True
        if isinstance(item, asyncpg.exceptions.InterfaceError) and "closed" in str(item):
            return True
        if getattr(item, "connection_invalidated", False):
            return True
    return False


def describe_open_error(error: BaseException, display: str, user: str | None) -> StorageUnavailable | None:
    """A clear :class:`StorageUnavailable` for an error raised while connecting, or None if unknown."""
    who = f"user {user!r}" if user else "the default user"
    for item in chain(error):
        if isinstance(item, asyncpg.exceptions.InvalidPasswordError):
            return StorageUnavailable(
                f"PostgreSQL at {display} rejected the password of {who}: {item}. "
                "Check the credentials in the storage URL."
            )
        if isinstance(item, asyncpg.exceptions.InvalidAuthorizationSpecificationError):
            return StorageUnavailable(f"PostgreSQL at {display} refused {who}: {item}")
        if isinstance(item, asyncpg.exceptions.InvalidCatalogNameError):
            return StorageUnavailable(f"PostgreSQL at {display}: {item}. Create the database first.")
        if isinstance(item, asyncpg.exceptions.CannotConnectNowError | asyncpg.exceptions.TooManyConnectionsError):
            return StorageUnavailable(f"PostgreSQL at {display} is not accepting connections: {item}")
        if isinstance(item, asyncio.TimeoutError | TimeoutError):
            return StorageUnavailable(f"cannot reach PostgreSQL at {display}: connection timed out")
        if isinstance(item, OSError):
            reason = item.strerror or str(item) or type(item).__name__
            return StorageUnavailable(f"cannot reach PostgreSQL at {display}: {reason}")
    return None


def asyncpg_connect_kwargs(dialect: Any, url: Any) -> dict[str, Any]:
    """``asyncpg.connect`` arguments equivalent to the SQLAlchemy URL (for the dedicated connections)."""
    _args, kwargs = dialect.create_connect_args(url)
    return {k: v for k, v in kwargs.items() if k in _CONNECT_KEYS}
