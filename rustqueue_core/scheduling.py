"""Cron and interval arithmetic for schedules (SEMANTICS §3.2, §3.3).

Cron expressions are evaluated on local wall-clock time in the schedule's timezone with croniter on
naive datetimes, then mapped to UTC: a local time skipped by a DST jump fires at the first instant
after the jump, a repeated local time fires on its first occurrence only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rustqueue_core.errors import ValidationError

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: How far back local iteration starts, so a fire time inside a repeated hour still finds its slot.
_LOOKBACK = timedelta(hours=3)
_MAX_CANDIDATES = 10_000


def normalize_cron(expr: object) -> str:
    """Validate a 5-field expression (or alias); returns the form croniter evaluates."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValidationError("Invalid cron expression: empty")
    text = expr.strip()
    if text.startswith("@"):
        alias = _ALIASES.get(text.lower())
        if alias is None:
            raise ValidationError(f"Invalid cron expression: unknown alias {text!r}")
        return alias
    fields = text.split()
    if len(fields) != 5:
        raise ValidationError(
            f"Invalid cron expression: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    if "W" in fields[2].upper():
        raise ValidationError("Invalid cron expression: 'W' (nearest weekday) is not supported")
    fields = ["*" if f == "?" else f for f in fields]
    normalized = " ".join(fields)
    try:
        from croniter import croniter  # imported on first use: it brings dateutil (~8 MB)

        if not croniter.is_valid(normalized):
            raise ValueError("not a valid cron expression")
        croniter(normalized, datetime(2026, 1, 1)).get_next(datetime)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"Invalid cron expression: {exc}") from None
    return normalized


def load_timezone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    if not isinstance(name, str):
        raise ValidationError("timezone must be an IANA name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown timezone '{name}': {exc}") from None


def _local_to_utc(local: datetime, tz: tzinfo) -> datetime:
    """First UTC instant showing wall time ``local`` (or, if skipped, the first instant after it)."""
    first = local.replace(tzinfo=tz, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) == local:
        return as_utc
    # Skipped by a forward jump: find the jump instant between the two interpretations.
    low = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = as_utc
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= local:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0) if high.microsecond else high


def next_cron(expr: str, tz: tzinfo, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware UTC)."""
    local_after = after.astimezone(tz).replace(tzinfo=None)
    from croniter import croniter

    it = croniter(expr, local_after - _LOOKBACK)
    for _ in range(_MAX_CANDIDATES):
        candidate = it.get_next(datetime)
        fire = _local_to_utc(candidate, tz)
        if fire > after:
            return fire
    raise ValidationError(f"Invalid cron expression: no fire time found after {after.isoformat()}")


def next_interval(every_ms: int, previous: datetime | None, now: datetime) -> datetime:
    """``previous + every_ms`` advanced in whole steps past ``now`` (no drift, no catch-up)."""
    step = timedelta(milliseconds=every_ms)
    if previous is None:
        return now + step
    nxt = previous + step
    if nxt <= now:
        missed = (now - nxt) // step + 1
        nxt += step * missed
    return nxt
