"""UUIDv7 job ids, monotonic within the process (RFC 9562 §6.2, method 1: fixed-length counter).

Layout: 48-bit Unix ms timestamp | version 7 | 12-bit counter high | variant | 30-bit counter low |
32 random bits. The 42-bit counter is seeded randomly (top bit clear, leaving room to count) each new
millisecond and incremented within one; when it overflows the timestamp is advanced by one, so ids
never go backwards even if the system clock does.
"""

from __future__ import annotations

import os
import struct
import threading
import time

_COUNTER_BITS = 42
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_SEED_MASK = (1 << (_COUNTER_BITS - 1)) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)


class UUIDv7Generator:
    """Thread-safe monotonic UUIDv7 source."""

    #: Random bytes drawn from the OS at a time: one ``urandom`` call serves many ids.
    _POOL_BYTES = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._pool = b""
        self._pool_at = 0

    def _random(self, size: int) -> bytes:
        """``size`` fresh random bytes from the pool (call with the lock held)."""
        at = self._pool_at
        if at + size > len(self._pool):
            self._pool = os.urandom(max(self._POOL_BYTES, size))
            at = 0
        self._pool_at = at + size
        return self._pool[at : at + size]

    def _next_ints(self, n: int) -> list[int]:
        out: list[int] = []
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._last_ms = ms
                self._counter = int.from_bytes(self._random(6), "big") & _SEED_MASK
            else:
                ms = self._last_ms
            tails = struct.unpack(f">{n}I", self._random(4 * n))
            counter = self._counter
            base = (ms << 80) | _VERSION_AND_VARIANT
            for tail in tails:
                counter += 1
                if counter > _COUNTER_MAX:
                    ms += 1
                    counter = int.from_bytes(self._random(6), "big") & _SEED_MASK
                    base = (ms << 80) | _VERSION_AND_VARIANT
                out.append(base | ((counter >> 30) << 64) | ((counter & 0x3FFFFFFF) << 32) | tail)
            self._last_ms = ms
            self._counter = counter
        return out

    def new_ids(self, n: int) -> list[tuple[str, bytes]]:
        """``n`` fresh ids as (hyphenated text, 16 raw bytes), strictly increasing."""
        result: list[tuple[str, bytes]] = []
        for value in self._next_ints(n):
            raw = value.to_bytes(16, "big")
            h = raw.hex()
            result.append((f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", raw))
        return result

    def new_id(self) -> str:
        return self.new_ids(1)[0][0]


_GENERATOR = UUIDv7Generator()


def _after_fork_in_child() -> None:
    # A forked child must not replay the parent's unused random bytes or continue its counter.
    _GENERATOR._lock = threading.Lock()
    _GENERATOR._pool = b""
    _GENERATOR._pool_at = 0
    _GENERATOR._last_ms = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def new_ids(n: int) -> list[tuple[str, bytes]]:
    return _GENERATOR.new_ids(n)


def new_id() -> str:
    """One fresh lowercase hyphenated UUIDv7."""
    return _GENERATOR.new_id()


def id_bytes(job_id: str) -> bytes:
    """The 16 bytes of a hyphenated UUID (raises ValueError when it is not one)."""
    raw = bytes.fromhex(job_id.replace("-", ""))
    if len(raw) != 16:
        raise ValueError(f"not a UUID: {job_id!r}")
    return raw
