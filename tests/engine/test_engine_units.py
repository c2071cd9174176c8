"""Ids, sort keys, token buckets, validation helpers."""

from __future__ import annotations

import uuid

import pytest

from rustqueue_core.errors import RateLimited
from rustqueue_core.ids import new_ids
from rustqueue_core.ratelimit import TokenBucket
from rustqueue_core.sortkey import sort_key
from rustqueue_core.stats import SlidingRate
from rustqueue_core.storage import new_lease_tokens


def test_ids_are_monotonic_uuid7() -> None:
    ids = [text for text, _ in new_ids(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in ids[:10]:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_lease_tokens_of_a_batch_are_distinct_128_bit_hex() -> None:
    tokens = new_lease_tokens(500)
    assert len(tokens) == 500 and len(set(tokens)) == 500
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)
    assert new_lease_tokens(0) == []
    assert set(new_lease_tokens(3)).isdisjoint(tokens)


def test_sort_key_orders() -> None:
    raw = [i.to_bytes(16, "big") for i in range(3)]
    numeric = [sort_key("max_first", p, False, 1, raw[0]) for p in (2**64 - 1, 0, -(2**63))]
    assert numeric == sorted(numeric)
    older, newer = sort_key("max_first", 0, True, 1, raw[0]), sort_key("max_first", 0, True, 2, raw[1])
    assert newer < older < sort_key("max_first", 0, False, 0, raw[2])
    assert sort_key("fifo", 99, False, 1, raw[0]) < sort_key("fifo", 0, False, 2, raw[0])


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
    bucket.take(2, 0.0, "q")
    with pytest.raises(RateLimited) as info:
        bucket.take(1, 0.1, "q")
    assert info.value.retry_after_ms == 400
    bucket.take(1, 0.5, "q")
    bucket.refund(5)
    assert bucket.tokens == 2


def test_sliding_rate_window() -> None:
    rate = SlidingRate()
    rate.add(5, 10.0)
    rate.add(3, 11.5)
    assert rate.total(12.0) == 8
    assert rate.total(70.5) == 3
    assert rate.total(200.0) == 0


def test_memory_monitor_levels_with_exit_thresholds() -> None:
    from rustqueue_core.memory_pressure import CRITICAL, NORMAL, PRESSURE, MemoryMonitor

    mb = 1024 * 1024
    monitor = MemoryMonitor(100, threshold=0.8, critical=0.9, exit=0.7, critical_exit=0.9)
    assert monitor.update(50 * mb)[1] == NORMAL
    assert monitor.update(85 * mb)[1] == PRESSURE
    assert monitor.update(92 * mb)[1] == CRITICAL
    assert monitor.update(89 * mb)[1] == PRESSURE  # below critical_exit
    assert monitor.update(75 * mb)[1] == PRESSURE  # hysteresis: still above exit
    assert monitor.update(69 * mb)[1] == NORMAL
    default = MemoryMonitor(100)  # defaults: pressure 0.8, critical 1.0, each left 5 % below entry
    assert default.update(100 * mb)[1] == CRITICAL
    assert default.update(96 * mb)[1] == CRITICAL
    assert default.update(94 * mb)[1] == PRESSURE
    assert default.update(76 * mb)[1] == PRESSURE
    assert default.update(74 * mb)[1] == NORMAL
