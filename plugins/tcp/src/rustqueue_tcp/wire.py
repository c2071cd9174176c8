"""JSON shapes of the TCP protocol: jobs, schedules, counts, error lines and push-option reading."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from rustqueue_core.models import JobOptions
from rustqueue_core.wire import (  # noqa: F401 - re-exported for the commands module
    COUNT_WIRE_FIELDS,
    JOB_WIRE_FIELDS,
    LEASE_WIRE_FIELDS,
    counts_to_wire,
    job_to_wire,
    offset_timestamp,
    options_to_wire,
)

#: The original serialises TCP responses as generic JSON values, whose keys come out sorted.
_ENCODER = msgspec.json.Encoder(order="sorted")
_DECODER = msgspec.json.Decoder()

#: Top-level keys that make ``push`` read the whole command object as options.
PUSH_OPTION_TRIGGERS = frozenset(
    {
        "priority",
        "max_attempts",
        "delay_ms",
        "unique_key",
        "timeout_ms",
        "ttl_ms",
        "backoff",
        "tags",
        "depends_on",
        "flow_id",
    }
)
#: ``push_batch`` items use a shorter trigger list (the original's behaviour).
BATCH_OPTION_TRIGGERS = frozenset({"priority", "max_attempts", "delay_ms", "unique_key"})

_UNSIGNED_OPTION_KEYS = ("delay_ms", "max_attempts", "backoff_delay_ms", "ttl_ms", "timeout_ms")
_BACKOFFS = frozenset({"fixed", "linear", "exponential"})
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
U32_MASK = 0xFFFF_FFFF

OK_LINE = b'{"ok":true}\n'
AUTH_REQUIRED_MESSAGE = 'Authentication required. Send {"cmd":"auth","token":"..."} first'


class CommandError(Exception):
    """A request that is answered with an error line (no engine call happened)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validation(message: str) -> CommandError:
    return CommandError("VALIDATION_ERROR", message)


def missing(field: str) -> CommandError:
    return CommandError("VALIDATION_ERROR", f"Missing '{field}' field")


# --------------------------------------------------------------------------- encoding


def encode_line(value: Any) -> bytes:
    return _ENCODER.encode(value) + b"\n"


def decode(data: bytes) -> Any:
    return _DECODER.decode(data)


def error_line(code: str, message: str) -> bytes:
    return encode_line({"ok": False, "error": {"code": code, "message": message}})


def encode_json(value: Any) -> bytes:
    """Compact JSON of a value (binary pull payloads)."""
    return _ENCODER.encode(value)


def schedule_to_wire(schedule: Any) -> dict[str, Any]:
    """TCP answers carry the original's schedule keys only."""
    from rustqueue_core.wire import schedule_to_wire as to_wire

    return to_wire(schedule, extended=False)


# --------------------------------------------------------------------------- reading requests


#: A job id already in canonical form (what the server hands out): accepted without parsing.
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_job_id(value: Any, what: str = "Invalid job ID format") -> str:
    """Accept what a UUID parser accepts (any case, with or without hyphens); return canonical form."""
    if not isinstance(value, str):
        raise validation(what)
    if len(value) == 36 and _CANONICAL_ID.fullmatch(value) is not None:
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise validation(what) from None


def require_str(command: Mapping[str, Any], field: str) -> str:
    value = command.get(field)
    if not isinstance(value, str):
        raise missing(field)
    return value


def optional_str(command: Mapping[str, Any], field: str) -> str | None:
    value = command.get(field)
    return value if isinstance(value, str) else None


def as_unsigned(value: Any) -> int | None:
    """The original's ``as_u64``: a non-negative JSON integer, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def coerce_count(value: Any) -> int:
    """``count``: not an unsigned integer → 1; above u32 → truncated like ``as u32``."""
    number = as_unsigned(value)
    if number is None:
        return 1
    return number & U32_MASK


def convert_options(raw: Any) -> JobOptions | None:
    """Deserialize JobOptions the way serde would, or None when it would fail."""
    if not isinstance(raw, Mapping):
        return None
    try:
        options = msgspec.convert(raw, JobOptions)
    except msgspec.ValidationError:
        return None
    for name in _UNSIGNED_OPTION_KEYS:
        value = getattr(options, name)
        if value is not None and value < 0:
            return None
    if options.backoff is not None and options.backoff not in _BACKOFFS:
        return None
    priority = options.priority
    if priority is not None and (not isinstance(priority, int) or not _I32_MIN <= priority <= _I32_MAX):
        return None
    return options


def read_push_options(command: Mapping[str, Any], triggers: frozenset[str]) -> JobOptions:
    """Nested ``options`` if it deserializes; else the whole object when a trigger key is on top."""
    nested = command.get("options")
    if nested is not None:
        options = convert_options(nested)
        if options is not None:
            return options
    if not triggers.isdisjoint(command.keys()):
        options = convert_options(command)
        if options is not None:
            return options
    return JobOptions()
