"""Entry point of the ``duckdb`` history plugin. DuckDB is imported on first use, never at load time."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rustqueue_core import hookimpl

if TYPE_CHECKING:
    from rustqueue_core.config import CommandRegistry, Config
    from rustqueue_core.models import HealthCheck, JobEvent
    from rustqueue_duckdb.archive import Archiver, HistoryConfig


class HistoryPlugin:
    """Per-host state: the ``[history]`` settings and the archiver of the engine being served."""

    def __init__(self, config: HistoryConfig | None = None) -> None:
        self.config = config
        self.archiver: Archiver | None = None

    def settings(self) -> HistoryConfig:
        if self.config is None:
            from rustqueue_duckdb.archive import HistoryConfig

            self.config = HistoryConfig()
        return self.config

    @hookimpl
    def rustqueue_configure(self, config: Config) -> None:
        from rustqueue_duckdb.archive import HistoryConfig

        self.config = config.section("history", HistoryConfig)

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        if self.archiver is not None:
            self.archiver.record(events)

    @hookimpl
    def rustqueue_lifespan(self, engine: Any) -> Any:
        settings = self.settings()
        if not settings.enabled:
            return None
        from rustqueue_duckdb.archive import Archiver

        self.archiver = Archiver(engine, settings)
        return self.archiver

    @hookimpl
    def rustqueue_health(self, engine: Any) -> HealthCheck | None:
        from rustqueue_core.models import HealthCheck

        archiver = self.archiver
        if archiver is None:
            return None
        degraded = bool(archiver.dropped or archiver.flush_failures)
        return HealthCheck(
            component="history",
            state="degraded" if degraded else "ok",
            detail=(
                f"{archiver.archived} archived, {archiver.dropped} dropped, {archiver.flush_failures} flush failures"
            ),
        )

    @hookimpl
    def rustqueue_add_commands(self, commands: CommandRegistry) -> None:
        commands.add("history", "query the job history archive (duckdb plugin)", _configure_parser, self.run_command)

    def run_command(self, args: argparse.Namespace, host: Any) -> int:
        from rustqueue_duckdb.history import History

        config = getattr(host, "config", None)
        if config is not None and self.config is None:
            self.rustqueue_configure(config)
        path = args.db or self.settings().path
        history = History(path)
        since = parse_since(args.since)
        if args.report == "throughput":
            rows = history.throughput(queue=args.queue, since=since, bucket=args.bucket)
        elif args.report == "latency":
            rows = history.latency(queue=args.queue, since=since)
        elif args.report == "failures":
            rows = history.failure_rates(queue=args.queue, since=since)
        elif args.report == "errors":
            rows = history.top_errors(queue=args.queue, since=since, limit=args.limit)
        else:
            rows = history.slowest_names(queue=args.queue, since=since, limit=args.limit)
        if args.json:
            print(json.dumps(rows, default=str, indent=2))
        else:
            print_table(rows)
        return 0


_SINCE = re.compile(r"^(\d+)([smhd])$")


def parse_since(text: str | None) -> timedelta | None:
    if text is None or text == "all":
        return None
    match = _SINCE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"--since expects e.g. 15m, 24h, 7d or 'all', got {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "report",
        nargs="?",
        default="throughput",
        choices=["throughput", "latency", "failures", "errors", "slowest"],
    )
    parser.add_argument("--db", metavar="PATH", help="history file (default: [history] path)")
    parser.add_argument("--queue", help="only this queue")
    parser.add_argument("--since", default="1h", help="time window: 15m, 24h, 7d, or all (default 1h)")
    parser.add_argument("--bucket", default="minute", choices=["minute", "hour", "day"])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print JSON")


def print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("No archived jobs in that window.")
        return
    headers = list(rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}"
        return "" if value is None else str(value)

    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        table = [[cell(row[h]) for h in headers] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for line in table:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
        return
    rich_table = Table(*headers)
    for row in rows:
        rich_table.add_row(*(cell(row[h]) for h in headers))
    Console().print(rich_table)


def rustqueue_plugin_factory(host: Any) -> HistoryPlugin:
    """One history archiver per plugin host, so two engines in one process never share a buffer."""
    return HistoryPlugin()
