"""Webhook event names, input validation and delivery bodies.

Subscriptions accept both spellings (``job_completed`` and ``job.completed``) and are stored in the
original's snake form; deliveries always use the dotted form.

Engine event kinds map to webhook events as follows: ``job.pushed`` and ``job.unblocked`` →
``job.pushed`` (the original re-sent ``job.pushed`` when a blocked job became ready);
``job.completed``; ``job.cancelled``; ``job.progress``; ``job.dlq`` → **both** ``job.dlq`` and
``job.failed``. The original reported every dead-letter entry as ``job.failed``, so receivers built
for it keep working, while ``job.dlq`` names the same moment explicitly. Each webhook gets one
delivery per event it subscribes to, so a webhook with an empty filter receives both for a DLQ
entry; subscribe to one of them to receive it once. Retries, claims, releases, delayed promotion
and deletions produce no webhook event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import msgspec

#: Subscribable event types, in the original's snake spelling.
EVENT_TYPES: tuple[str, ...] = (
    "job_pushed",
    "job_completed",
    "job_failed",
    "job_dlq",
    "job_cancelled",
    "job_progress",
)
_BY_SPELLING: dict[str, str] = {}
for _name in EVENT_TYPES:
    _BY_SPELLING[_name] = _name
    _BY_SPELLING[_name.replace("_", ".", 1)] = _name

#: Engine event kind → webhook event types (snake) it produces.
KIND_TO_EVENTS: dict[str, tuple[str, ...]] = {
    "job.pushed": ("job_pushed",),
    "job.unblocked": ("job_pushed",),
    "job.completed": ("job_completed",),
    "job.dlq": ("job_dlq", "job_failed"),
    "job.cancelled": ("job_cancelled",),
    "job.progress": ("job_progress",),
}


def dotted(event_type: str) -> str:
    """``job_completed`` → ``job.completed``."""
    return event_type.replace("_", ".", 1)


class WebhookInputError(Exception):
    """A webhook registration is invalid. ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def normalize_events(names: Sequence[str]) -> list[str]:
    """Map each name to its snake spelling, keeping order and dropping repeats."""
    result: list[str] = []
    for name in names:
        canonical = _BY_SPELLING.get(name) if isinstance(name, str) else None
        if canonical is None:
            expected = ", ".join(EVENT_TYPES)
            raise WebhookInputError(f"unknown event type {name!r}; expected one of: {expected}", 422)
        if canonical not in result:
            result.append(canonical)
    return result


def validate_input(url: str, events: Sequence[str], secret: str | None) -> list[str]:
    """Check a registration; return its events in snake spelling. Raises ``WebhookInputError``."""
    if not url:
        raise WebhookInputError("url is required")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookInputError(f"url must be an absolute http:// or https:// URL, got {url!r}")
    if secret is not None and secret == "":
        raise WebhookInputError("secret must not be empty; omit it or send null for unsigned deliveries")
    return normalize_events(events)


_encoder = msgspec.json.Encoder()


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delivery_body(event_type: str, webhook_id: str, timestamp: datetime, job_id: str, queue: str) -> bytes:
    """The exact bytes POSTed (and signed): compact JSON in the original's key order."""
    return _encoder.encode(
        {
            "event": dotted(event_type),
            "webhook_id": webhook_id,
            "timestamp": rfc3339(timestamp),
            "data": {"job_id": job_id, "queue": queue},
        }
    )
