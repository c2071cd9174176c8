"""Shutdown signals. The first SIGINT or SIGTERM asks for a graceful stop, and a later one skips what is
left of it. A repeat of the first signal that arrives too soon after it is the same request delivered
twice, and is ignored."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

#: A repeat of the first shutdown signal within this many seconds counts as the same request. Some
#: launchers sit between the terminal and the process and forward a signal the process already received
#: as a member of its process group: ``uv run`` with no TTY forwards SIGINT about 200 ms later, and so do
#: supervisors that signal a whole group. A person who presses Ctrl-C again to skip the drain is slower.
REPEAT_WINDOW_S = 0.5

SignalKind = Literal["stop", "same", "force"]


class ShutdownSignals:
    """Classifies shutdown signal deliveries, in order of arrival:

    - ``"stop"``: the first one; begin a graceful stop.
    - ``"same"``: the first signal again within :data:`REPEAT_WINDOW_S`; the same request, ignore it.
    - ``"force"``: any later one; skip what is left of the graceful stop.
    """

    def __init__(self, window: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._first: tuple[int, float] | None = None

    @property
    def received(self) -> bool:
        """True once any shutdown signal arrived."""
        return self._first is not None

    def classify(self, signum: int) -> SignalKind:
        now = self._clock()
        if self._first is None:
            self._first = (signum, now)
            return "stop"
        first, at = self._first
        if signum == first and now - at < self._window:
            return "same"
        return "force"
