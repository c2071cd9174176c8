"""Input validation (SEMANTICS §1.7). Messages follow PROTOCOL.md §1.11 where the original had one."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from rustqueue_core.errors import ValidationError
from rustqueue_core.models import JOB_OPTION_KEYS, JobDefaults, JobOptions

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
MAX_QUEUE_NAME = 256
MAX_JOB_NAME = 1024
MAX_DATA = 1_048_576
MAX_METADATA = 65_536
MAX_KEY = 1024
MAX_TAGS = 100
MAX_TAG = 256
MAX_ERROR = 10_240
MAX_U32 = 2**32 - 1
MIN_PRIORITY = -(2**63)
MAX_PRIORITY = 2**64 - 1
MAX_TEXT_PRIORITY = 1024

BACKOFFS = frozenset({"fixed", "linear", "exponential"})
ORDERING_ALIASES = {
    "max_first": "max_first",
    "priority": "max_first",
    "MaxFirst": "max_first",
    "min_first": "min_first",
    "MinFirst": "min_first",
    "fifo": "fifo",
    "Fifo": "fifo",
    "lifo": "lifo",
    "Lifo": "lifo",
}
PRIORITY_KINDS = {"numeric": "numeric", "Numeric": "numeric", "text": "text", "Text": "text"}

_encode = msgspec.json.encode
_OPTION_KEYS = frozenset(JOB_OPTION_KEYS)
# Names already found valid: most pushes repeat a few names, so the regex runs once per name.
_VALID_NAMES: set[str] = set()
_VALID_JOB_NAMES: set[str] = set()


def check_queue_name(name: object, index: int | None = None) -> str:
    if isinstance(name, str) and name in _VALID_NAMES:
        return name
    if isinstance(name, str) and _NAME_RE.fullmatch(name) is not None:
        if len(name) > MAX_QUEUE_NAME:
            raise ValidationError(f"Queue name exceeds maximum length of {MAX_QUEUE_NAME} bytes", index=index)
        if len(_VALID_NAMES) < 10_000:
            _VALID_NAMES.add(name)
        return name
    raise ValidationError(
        "Queue name must be non-empty and contain only alphanumeric characters, dashes, underscores, or dots",
        index=index,
    )


def check_job_name(name: object, index: int | None = None) -> str:
    if isinstance(name, str) and name in _VALID_JOB_NAMES:
        return name
    if isinstance(name, str) and _NAME_RE.fullmatch(name) is not None:
        if len(name) > MAX_JOB_NAME:
            raise ValidationError(f"Job name exceeds maximum length of {MAX_JOB_NAME} bytes", index=index)
        if len(_VALID_JOB_NAMES) < 10_000:
            _VALID_JOB_NAMES.add(name)
        return name
    raise ValidationError(
        "Job name must be non-empty and contain only alphanumeric characters, dashes, underscores, or dots",
        index=index,
    )


def encode_json(value: Any, what: str, index: int | None = None) -> bytes:
    try:
        return _encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError, ValueError) as exc:
        raise ValidationError(f"{what} is not JSON-encodable: {exc}", index=index) from None


def check_data(data: Any, index: int | None = None) -> None:
    if data is None or (isinstance(data, dict) and not data):
        return
    size = len(encode_json(data, "Job data", index))
    if size > MAX_DATA:
        raise ValidationError(f"Job data payload ({size} bytes) exceeds maximum of {MAX_DATA} bytes", index=index)


def check_result(result: Any, index: int | None = None) -> None:
    if result is None:
        return
    size = len(encode_json(result, "Job result", index))
    if size > MAX_DATA:
        raise ValidationError(f"Job result payload ({size} bytes) exceeds maximum of {MAX_DATA} bytes", index=index)


def check_error_text(text: object, what: str = "Error message", index: int | None = None) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be a string", index=index)
    size = len(text.encode())
    if size > MAX_ERROR:
        raise ValidationError(f"{what} ({size} bytes) exceeds maximum of {MAX_ERROR} bytes", index=index)
    return text


def _check_int(value: object, what: str, index: int | None, low: int = 0, high: int = MAX_U32) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an integer", index=index)
    if not low <= value <= high:
        raise ValidationError(f"{what} must be between {low} and {high}", index=index)
    return value


def _check_text(value: object, what: str, index: int | None, limit: int = MAX_KEY) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string", index=index)
    if len(value.encode()) > limit:
        raise ValidationError(f"{what} exceeds maximum length of {limit} bytes", index=index)


def _check_bool(value: object, what: str, index: int | None) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"{what} must be a boolean", index=index)


def check_priority(priority: object, kind: str, index: int | None = None) -> int | str:
    if kind == "text":
        if not isinstance(priority, str):
            raise ValidationError("Priority must be a string on a queue with text priorities", index=index)
        if "\x00" in priority:
            raise ValidationError("Priority must not contain U+0000", index=index)
        if len(priority.encode()) > MAX_TEXT_PRIORITY:
            raise ValidationError(f"Priority exceeds maximum length of {MAX_TEXT_PRIORITY} bytes", index=index)
        return priority
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValidationError("Priority must be an integer on a queue with numeric priorities", index=index)
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValidationError(f"Priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", index=index)
    return priority


def check_options(opts: JobOptions, index: int | None = None) -> None:
    """Type and range checks of every set option (priority is checked against the queue kind later)."""
    if opts.delay_ms is not None:
        _check_int(opts.delay_ms, "delay_ms", index)
    if opts.max_attempts is not None:
        _check_int(opts.max_attempts, "max_attempts", index)
    if opts.backoff is not None and opts.backoff not in BACKOFFS:
        raise ValidationError(f"backoff must be one of fixed, linear, exponential (got {opts.backoff!r})", index=index)
    for field in ("backoff_delay_ms", "ttl_ms", "timeout_ms"):
        value = getattr(opts, field)
        if value is not None:
            _check_int(value, field, index)
    if opts.unique_key is not None:
        if not isinstance(opts.unique_key, str):
            raise ValidationError("unique_key must be a string", index=index)
        if len(opts.unique_key.encode()) > MAX_KEY:
            raise ValidationError(f"Unique key exceeds maximum length of {MAX_KEY} bytes", index=index)
    for field in ("custom_id", "group_id", "flow_id"):
        value = getattr(opts, field)
        if value is not None:
            _check_text(value, field, index)
    if opts.tags is not None:
        if not isinstance(opts.tags, list) or not all(isinstance(t, str) for t in opts.tags):
            raise ValidationError("tags must be a list of strings", index=index)
        if len(opts.tags) > MAX_TAGS:
            raise ValidationError(f"At most {MAX_TAGS} tags are allowed", index=index)
        for tag in opts.tags:
            if len(tag.encode()) > MAX_TAG:
                raise ValidationError(f"Tag exceeds maximum length of {MAX_TAG} bytes", index=index)
    for field in ("lifo", "remove_on_complete", "remove_on_fail"):
        value = getattr(opts, field)
        if value is not None:
            _check_bool(value, field, index)
    if opts.metadata is not None:
        size = len(encode_json(opts.metadata, "Job metadata", index))
        if size > MAX_METADATA:
            raise ValidationError(f"Job metadata ({size} bytes) exceeds maximum of {MAX_METADATA} bytes", index=index)
    if opts.depends_on is not None and (
        not isinstance(opts.depends_on, list) or not all(isinstance(p, str) for p in opts.depends_on)
    ):
        raise ValidationError("depends_on must be a list of job ids", index=index)


def options_from_mapping(raw: Mapping[str, Any], index: int | None = None, strict: bool = False) -> JobOptions:
    """Build ``JobOptions`` from keywords or a wire mapping. Unknown keys fail when ``strict``."""
    if not strict and _OPTION_KEYS.isdisjoint(raw):
        return JobOptions()
    present = raw.keys() & _OPTION_KEYS
    if strict and len(present) != len(raw):
        unknown = sorted(k for k in raw if k not in _OPTION_KEYS)
        raise ValidationError(f"Unknown job option '{unknown[0]}'", index=index)
    if not present:
        return JobOptions()
    values = {k: v for k in present if (v := raw[k]) is not None}
    try:
        return JobOptions(**values)
    except TypeError as exc:
        raise ValidationError(str(exc), index=index) from None


def check_job_defaults(defaults: JobDefaults | Mapping[str, Any] | None) -> JobDefaults:
    if defaults is None:
        return JobDefaults()
    if isinstance(defaults, Mapping):
        try:
            defaults = msgspec.convert(dict(defaults), JobDefaults, strict=True)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"job_defaults: {exc}") from None
    opts = JobOptions(
        max_attempts=defaults.max_attempts,
        backoff=defaults.backoff,
        backoff_delay_ms=defaults.backoff_delay_ms,
        timeout_ms=defaults.timeout_ms,
        ttl_ms=defaults.ttl_ms,
        remove_on_complete=defaults.remove_on_complete,
        remove_on_fail=defaults.remove_on_fail,
    )
    check_options(opts)
    return defaults


def check_queue_settings(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise changeable queue fields (SEMANTICS §1.4); returns the clean values."""
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "ordering":
            if value not in ORDERING_ALIASES:
                raise ValidationError(f"ordering must be one of max_first, min_first, fifo, lifo (got {value!r})")
            clean[key] = ORDERING_ALIASES[value]
        elif key == "priority_kind":
            if value not in PRIORITY_KINDS:
                raise ValidationError(f"priority_kind must be numeric or text (got {value!r})")
            clean[key] = PRIORITY_KINDS[value]
        elif key in ("allow_duplicates", "paused", "consume_paused"):
            _check_bool(value, key, None)
            clean[key] = value
        elif key == "lease_ms":
            if value is not None:
                _check_int(value, key, None, 1)
            clean[key] = value
        elif key == "rate_limit_per_second":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0
            ):
                raise ValidationError("rate_limit_per_second must be a finite number greater than zero")
            clean[key] = None if value is None else float(value)
        elif key == "rate_limit_burst" or key == "group_concurrency":
            if value is not None:
                _check_int(value, key, None, 1)
            clean[key] = value
        elif key == "job_defaults":
            clean[key] = check_job_defaults(value)
        elif key == "max_retries":
            if value is not None:
                _check_int(value, key, None)
            clean[key] = value
        else:
            raise ValidationError(f"Unknown queue setting '{key}'")
    return clean
