"""Questions operators ask of the archive, answered by DuckDB's columnar scans.

>>> h = History("data/rustqueue-history.duckdb")
>>> h.throughput(queue="emails", since=timedelta(hours=1))      # per queue per minute
>>> h.latency(since=timedelta(days=1))                            # wait and run percentiles per queue
>>> h.failure_rates(); h.top_errors(limit=10); h.slowest_names(limit=10)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rustqueue_duckdb.archive import connect

_BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _since_clause(since: timedelta | datetime | None, queue: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        start = datetime.now(UTC) - since if isinstance(since, timedelta) else since
        clauses.append("finished_at >= ?")
        params.append(start)
    if queue is not None:
        clauses.append("queue = ?")
        params.append(queue)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class History:
    """Read-only queries over an archive file. Each method opens the file, asks, and closes it, so a
    running server can keep appending between calls."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no history file at {self.path} (is the duckdb plugin enabled?)")

    def _query(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        con = connect(self.path, read_only=True)
        try:
            cursor = con.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            con.close()

    def count(self) -> int:
        return int(self._query("SELECT count(*) AS n FROM archived_jobs", [])[0]["n"])

    def throughput(
        self,
        *,
        queue: str | None = None,
        since: timedelta | datetime | None = timedelta(hours=1),
        bucket: str = "minute",
    ) -> list[dict[str, Any]]:
        """Finished jobs per queue per ``bucket`` (minute, hour, day): completed, dead-lettered and failed
        attempts."""
        seconds = _BUCKET_SECONDS.get(bucket)
        if seconds is None:
            raise ValueError("bucket must be minute, hour or day")
        where, params = _since_clause(since, queue)
        # Integer epoch buckets: date_trunc on TIMESTAMPTZ goes through calendar code and is ~5x slower.
        return self._query(
            f"""SELECT to_timestamp((epoch_us(finished_at) // {seconds * 1_000_000}) * {seconds}) AS bucket, queue,
                       count(*) FILTER (WHERE outcome = 'completed') AS completed,
                       count(*) FILTER (WHERE outcome = 'dlq') AS dlq,
                       count(*) FILTER (WHERE outcome = 'failed_attempt') AS failed_attempts
                FROM archived_jobs{where}
                GROUP BY ALL ORDER BY bucket, queue""",
            params,
        )

    def latency(
        self, *, queue: str | None = None, since: timedelta | datetime | None = timedelta(hours=1)
    ) -> list[dict[str, Any]]:
        """Wait (created → started) and run (started → finished) percentiles in ms, per queue."""
        where, params = _since_clause(since, queue)
        cond = " AND " if where else " WHERE "
        return self._query(
            f"""SELECT queue, jobs, w[1] AS wait_p50, w[2] AS wait_p90, w[3] AS wait_p99,
                       r[1] AS run_p50, r[2] AS run_p90, r[3] AS run_p99
                FROM (SELECT queue, count(*) AS jobs, quantile_cont(wait_ms, [0.5, 0.9, 0.99]) AS w,
                             quantile_cont(run_ms, [0.5, 0.9, 0.99]) AS r
                      FROM archived_jobs{where}{cond}outcome IN ('completed', 'dlq', 'failed_attempt')
                      GROUP BY queue)
                ORDER BY queue""",
            params,
        )

    def failure_rates(
        self, *, queue: str | None = None, since: timedelta | datetime | None = timedelta(hours=1)
    ) -> list[dict[str, Any]]:
        """Per queue: runs, failed runs, and the share of runs that failed; jobs that reached the DLQ."""
        where, params = _since_clause(since, queue)
        cond = " AND " if where else " WHERE "
        return self._query(
            f"""SELECT queue, count(*) AS runs,
                       count(*) FILTER (WHERE outcome <> 'completed') AS failed_runs,
                       round(count(*) FILTER (WHERE outcome <> 'completed') / count(*), 4) AS failure_rate,
                       count(*) FILTER (WHERE outcome = 'dlq') AS dead_lettered
                FROM archived_jobs{where}{cond}outcome <> 'cancelled'
                GROUP BY queue ORDER BY failure_rate DESC, queue""",
            params,
        )

    def top_errors(
        self,
        *,
        queue: str | None = None,
        since: timedelta | datetime | None = timedelta(hours=1),
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        where, params = _since_clause(since, queue)
        cond = " AND " if where else " WHERE "
        return self._query(
            f"""SELECT queue, last_error AS error, count(*) AS occurrences, max(finished_at) AS last_seen
                FROM archived_jobs{where}{cond}outcome IN ('dlq', 'failed_attempt') AND last_error IS NOT NULL
                GROUP BY ALL ORDER BY occurrences DESC, last_seen DESC LIMIT ?""",
            [*params, int(limit)],
        )

    def slowest_names(
        self,
        *,
        queue: str | None = None,
        since: timedelta | datetime | None = timedelta(hours=1),
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """Job names by p90 run time."""
        where, params = _since_clause(since, queue)
        cond = " AND " if where else " WHERE "
        return self._query(
            f"""SELECT queue, name, count(*) AS runs, quantile_cont(run_ms, 0.5) AS run_p50,
                       quantile_cont(run_ms, 0.9) AS run_p90, max(run_ms) AS run_max
                FROM archived_jobs{where}{cond}run_ms IS NOT NULL
                GROUP BY ALL ORDER BY run_p90 DESC LIMIT ?""",
            [*params, int(limit)],
        )
