"""Pieces shared by the HTTP and TCP clients: error mapping and request shaping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rustqueue_core.errors import ERRORS_BY_CODE, RustQueueError, ValidationError
from rustqueue_core.models import JOB_OPTION_KEYS

_OPTION_KEYS = frozenset(JOB_OPTION_KEYS)
_VALIDATION_PREFIX = "Validation error: "


class RustQueueConnectionError(ConnectionError):
    """The server could not be reached, or the connection broke before an answer arrived."""


class ServerError(RustQueueError):
    """An error code the client has no dedicated class for (e.g. ``NOT_FOUND``, ``PARSE_ERROR``,
    ``UNKNOWN_COMMAND``, ``HTTP_ERROR``). Subclasses per code are made on demand."""


_DYNAMIC: dict[str, type[RustQueueError]] = {}


def error_class(code: str) -> type[RustQueueError]:
    cls = ERRORS_BY_CODE.get(code) or _DYNAMIC.get(code)
    if cls is None:
        name = "".join(part.capitalize() for part in code.split("_")) or "Unknown"
        cls = type(name, (ServerError,), {"code": code, "status": 500, "__module__": __name__})
        _DYNAMIC[code] = cls
    return cls


def error_from_wire(code: str, message: str, status: int | None = None) -> RustQueueError:
    """Rebuild the typed error of a wire ``{"code", "message"}`` without re-deriving its message."""
    cls = error_class(code)
    error = cls.__new__(cls)
    RustQueueError.__init__(error, message)
    if isinstance(error, ValidationError):
        error.reason = message.removeprefix(_VALIDATION_PREFIX)
        error.index = None
    if status is not None:
        error.details["http_status"] = status
    return error


def raise_for_body(body: Any, status: int | None = None) -> None:
    """Raise the typed error of an ``{"ok": false, "error": {...}}`` envelope."""
    if isinstance(body, Mapping) and body.get("ok") is False:
        error = body.get("error")
        if isinstance(error, Mapping):
            raise error_from_wire(str(error.get("code", "UNKNOWN")), str(error.get("message", "")), status)
        if "results" not in body:  # batch answers say ok:false with per-item outcomes instead
            raise error_from_wire("UNKNOWN_ERROR", "Server returned ok=false without error details", status)


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def split_job_item(item: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """``{"name", "data"?, "options"?: {...}}`` or flattened ``{"name", "data"?, **options}`` →
    (name, data, options)."""
    name = item["name"]
    data = item.get("data", {})
    options = dict(item.get("options") or {})
    for key, value in item.items():
        if key in _OPTION_KEYS and value is not None:
            options.setdefault(key, value)
    return name, data, drop_none(options)


def ack_item(item: str | Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """An ack-batch item from an id, an ``(id, result)`` pair or ``{"id", "result"?, "token"?}``."""
    if isinstance(item, str):
        return {"id": item}
    if isinstance(item, Mapping):
        entry: dict[str, Any] = {"id": item["id"]}
        if item.get("result") is not None:
            entry["result"] = item["result"]
        token = item.get("lease_token") or item.get("token")
        if token:
            entry["lease_token"] = token
        return entry
    job_id, result = item[0], item[1] if len(item) > 1 else None
    return {"id": job_id, "result": result} if result is not None else {"id": job_id}


def lease_item(item: str | Mapping[str, Any]) -> dict[str, Any]:
    """A heartbeat/release target from an id or ``{"id", "token"|"lease_token"}``."""
    if isinstance(item, str):
        return {"id": item}
    entry: dict[str, Any] = {"id": item["id"]}
    token = item.get("lease_token") or item.get("token")
    if token:
        entry["lease_token"] = token
    return entry


def pulled_jobs(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Both pull answer shapes (``job`` for count 1, else ``jobs``) as a list."""
    if "jobs" in body and body["jobs"] is not None:
        return list(body["jobs"])
    job = body.get("job")
    return [job] if job is not None else []
