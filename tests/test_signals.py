"""Shutdown signal classification: the first stops, a quick repeat of it is the same request, any later
signal forces."""

from __future__ import annotations

import signal

from rustqueue_core.signals import REPEAT_WINDOW_S, ShutdownSignals


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_signal_stops_and_its_quick_repeat_is_the_same_request() -> None:
    clock = FakeClock()
    signals = ShutdownSignals(clock=clock)
    assert not signals.received
    assert signals.classify(signal.SIGINT) == "stop"
    assert signals.received
    clock.now += REPEAT_WINDOW_S / 2
    assert signals.classify(signal.SIGINT) == "same"
    clock.now += REPEAT_WINDOW_S  # now past the window, counted from the first signal
    assert signals.classify(signal.SIGINT) == "force"


def test_a_different_signal_forces_even_within_the_window() -> None:
    clock = FakeClock()
    signals = ShutdownSignals(clock=clock)
    assert signals.classify(signal.SIGTERM) == "stop"
    clock.now += 0.01
    assert signals.classify(signal.SIGINT) == "force"


def test_the_window_is_counted_from_the_first_signal_not_the_last() -> None:
    clock = FakeClock()
    signals = ShutdownSignals(window=0.5, clock=clock)
    assert signals.classify(signal.SIGINT) == "stop"
    clock.now += 0.3
    assert signals.classify(signal.SIGINT) == "same"
    clock.now += 0.3  # 0.6 s after the first, 0.3 s after the previous
    assert signals.classify(signal.SIGINT) == "force"
