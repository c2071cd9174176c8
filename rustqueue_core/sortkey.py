"""The claim-order key (SEMANTICS §2.2), computed once at insert; storage sorts it bytewise ascending.

Encoding version 1: ``priority part`` + ``lifo flag`` + ``created_at µs (8 bytes BE)`` + ``id (16 bytes)``.
The priority part is the 9-byte big-endian of ``p + 2**63`` (numeric) or the UTF-8 bytes plus ``0x00``
(text), complemented for ``max_first`` and empty for ``fifo``/``lifo``. The flag is ``0x00`` for a lifo
job (which also has its time and id complemented, so newest comes first) and ``0x01`` otherwise.
The key is persisted: changing this encoding needs a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

SORT_KEY_VERSION = 1
_COMPLEMENT = bytes(255 - i for i in range(256))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMERIC_OFFSET = 1 << 63


def complement(raw: bytes) -> bytes:
    return raw.translate(_COMPLEMENT)


def timestamp_us(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@lru_cache(maxsize=4096)  # a queue uses few distinct priorities; the encoding is pure
def priority_part(ordering: str, priority: int | str) -> bytes:
    """The priority prefix of the key for a queue ``ordering``."""
    if ordering in ("fifo", "lifo"):
        return b""
    if isinstance(priority, str):
        raw = priority.encode() + b"\x00"
    else:
        raw = (priority + _NUMERIC_OFFSET).to_bytes(9, "big")
    return raw.translate(_COMPLEMENT) if ordering == "max_first" else raw


def sort_key(ordering: str, priority: int | str, lifo: bool, created_us: int, raw_id: bytes) -> bytes:
    """Full sort key of one job. ``lifo`` is the job's flag; a ``lifo`` queue makes every job lifo."""
    prefix = priority_part(ordering, priority)
    tail = created_us.to_bytes(8, "big") + raw_id
    if lifo or ordering == "lifo":
        return prefix + b"\x00" + tail.translate(_COMPLEMENT)
    return prefix + b"\x01" + tail


def sort_key_prefix(ordering: str, priority: int | str, lifo: bool) -> tuple[bytes, bool]:
    """The part of :func:`sort_key` before the time, and whether time and id go in complemented: jobs
    of one queue and priority share it, so ``prefix + tail`` (or ``prefix + complement(tail)``) with
    ``tail = created_us.to_bytes(8, "big") + raw_id`` equals ``sort_key(...)``."""
    prefix = priority_part(ordering, priority)
    if lifo or ordering == "lifo":
        return prefix + b"\x00", True
    return prefix + b"\x01", False
