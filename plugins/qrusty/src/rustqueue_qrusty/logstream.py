"""Server log lines for WebSocket ``subscribe-logs``: a ``logging.Handler`` feeding bounded queues.

Records may be emitted from any thread; they reach subscribers on the server's loop. A slow
subscriber loses lines (its queue is bounded) instead of holding memory or slowing the server.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

RECENT_LINES = 500
SUBSCRIBER_BUFFER = 256


class LogHub(logging.Handler):
    """Installed on the root logger while the qrusty server runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LINES)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.dropped = 0

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {
                "type": "log",
                "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
                "level": record.levelname,
                "target": record.name,
                "message": record.getMessage(),
            }
        except Exception:
            self.handleError(record)
            return
        if threading.get_ident() == self._loop_thread:
            self._publish(entry)
        else:
            try:
                self._loop.call_soon_threadsafe(self._publish, entry)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass

    def _publish(self, entry: dict[str, Any]) -> None:
        self.recent.append(entry)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(entry)
            except asyncio.QueueFull:
                self.dropped += 1

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
