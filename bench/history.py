"""History query benchmark: build an archive of N jobs (default 2,000,000) with DuckDB itself, then time each
report over it (median of 5). ``python bench/history.py [N]``."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import write_section


def build(path: Path, n: int) -> None:
    from rustqueue_duckdb.archive import connect, ensure_schema

    con = connect(path)
    ensure_schema(con)
    con.execute(
        """INSERT INTO archived_jobs
           SELECT 'job-' || i, 'queue-' || (i % 20), 'task-' || (i % 200),
                  CASE WHEN i % 50 = 0 THEN 'dlq' WHEN i % 17 = 0 THEN 'failed_attempt' ELSE 'completed' END,
                  1 + (i % 3), 3, '0',
                  now() - INTERVAL (i % 3600) SECOND - INTERVAL 2 SECOND,
                  now() - INTERVAL (i % 3600) SECOND - INTERVAL 1 SECOND,
                  now() - INTERVAL (i % 3600) SECOND,
                  (i % 1000)::DOUBLE, ((i * 7) % 5000)::DOUBLE,
                  CASE WHEN i % 17 = 0 OR i % 50 = 0 THEN 'Error ' || (i % 13) END,
                  NULL, NULL, 'w' || (i % 8)
           FROM range(?) t(i)""",
        [n],
    )
    con.close()


async def run(n: int, repeats: int, write: bool, command: str) -> None:
    from rustqueue_duckdb.history import History

    n = max(n, 2_000_000) if n >= 10_000 else n
    with tempfile.TemporaryDirectory(prefix="rq-history-") as tmp:
        path = Path(tmp) / "history.duckdb"
        started = time.perf_counter()
        build(path, n)
        built = time.perf_counter() - started
        history = History(path)
        reports = {
            "throughput per queue per minute (1 h)": lambda: history.throughput(since=timedelta(hours=1)),
            "wait/run p50/p90/p99 per queue": lambda: history.latency(since=None),
            "failure rate per queue": lambda: history.failure_rates(since=None),
            "top 10 errors": lambda: history.top_errors(since=None),
            "slowest 10 job names (p90)": lambda: history.slowest_names(since=None),
        }
        lines = ["| report | median seconds | rows returned |", "|---|---:|---:|"]
        for name, fn in reports.items():
            times = []
            rows = 0
            for _ in range(max(repeats, 5)):
                t = time.perf_counter()
                rows = len(fn())
                times.append(time.perf_counter() - t)
            lines.append(f"| {name} | {statistics.median(times):.3f} | {rows} |")
            print(f"{name:45} {statistics.median(times):.3f}s", file=sys.stderr)
    body = (
        "\n".join(lines) + f"\n\nArchive of {n:,} jobs (built in {built:.1f} s); each report opens the file read-only."
    )
    print(body)
    if write:
        write_section("history", body, command)


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000, 5, True, "python bench/history.py"))
