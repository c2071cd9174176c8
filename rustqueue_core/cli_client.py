"""Client subcommands of ``rustqueue``: ``status``, ``push``, ``inspect`` and ``schedules``.

They talk to a running server over HTTP. Host and port come from ``--host`` / ``--http-port``, else
``RUSTQUEUE_HOST`` / ``RUSTQUEUE_HTTP_PORT``, else ``127.0.0.1:6790``. A bearer token comes from
``--token``, else ``RUSTQUEUE_TOKEN``, else the first of ``auth.tokens`` in the config file.
Server errors print ``Error: <json>`` and exit 1; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from rustqueue_core.client import RustQueueClient, RustQueueConnectionError
from rustqueue_core.errors import RustQueueError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 6790
STATUS_COLUMNS = ("Queue", "Waiting", "Active", "Delayed", "Done", "Failed", "DLQ")
_COUNT_KEYS = ("waiting", "active", "delayed", "completed", "failed", "dlq")


def register(subparsers: Any) -> None:
    """Add the client subcommands to the ``rustqueue`` parser. Each sets ``func(args) -> exit code``."""
    status = subparsers.add_parser(
        "status",
        help="show queue status (counts per queue) of a running server",
        description="Show queue status: the counts of every queue of a running server.",
    )
    _add_connection_args(status)
    _add_output_args(status)
    status.set_defaults(func=cmd_status)

    push = subparsers.add_parser("push", help="push one job to a running server")
    push.add_argument("--queue", required=True, help="queue name")
    push.add_argument("--name", required=True, help="job name")
    push.add_argument("--data", default="{}", help="job data as JSON (default {}; invalid JSON means {})")
    _add_connection_args(push)
    _add_output_args(push)
    push.set_defaults(func=cmd_push)

    inspect = subparsers.add_parser("inspect", help="show one job of a running server")
    inspect.add_argument("id", metavar="ID", help="job id")
    _add_connection_args(inspect)
    _add_output_args(inspect)
    inspect.set_defaults(func=cmd_inspect)

    schedules = subparsers.add_parser("schedules", help="manage schedules of a running server")
    _add_connection_args(schedules)
    _add_output_args(schedules)
    actions = schedules.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list schedules")
    _add_output_args(listing, suppress=True)
    create = actions.add_parser("create", help="create or replace a schedule")
    create.add_argument("--name", required=True)
    create.add_argument("--queue", required=True)
    create.add_argument("--job-name", required=True)
    create.add_argument("--data", default=None, help="job data as JSON (invalid JSON means {})")
    create.add_argument("--cron", default=None, help="cron expression (UTC)")
    create.add_argument("--every-ms", type=int, default=None, help="interval in milliseconds")
    _add_output_args(create, suppress=True)
    for action in ("delete", "pause", "resume"):
        sub = actions.add_parser(action, help=f"{action} a schedule")
        sub.add_argument("schedule_name", metavar="NAME")
        _add_output_args(sub, suppress=True)
    schedules.set_defaults(func=cmd_schedules)


def _add_connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--host", default=None, help=f"server host (env RUSTQUEUE_HOST; default {DEFAULT_HOST})")
    group.add_argument(
        "--http-port",
        type=int,
        default=None,
        help=f"server HTTP port (env RUSTQUEUE_HTTP_PORT; default {DEFAULT_HTTP_PORT})",
    )
    group.add_argument("--token", default=None, help="bearer token (env RUSTQUEUE_TOKEN; else auth.tokens[0])")
    group.add_argument("-c", "--config", default=argparse.SUPPRESS, metavar="PATH", help="config file")


def _add_output_args(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    default: Any = argparse.SUPPRESS if suppress else False
    parser.add_argument("--json", action="store_true", default=default, help="print JSON")


# --------------------------------------------------------------------------- connection settings


def _config_token(path: str | None) -> str | None:
    try:
        from rustqueue_core.config import Config

        config = Config.load(path, explicit=path is not None)
        tokens = config.get("auth.tokens")
    except Exception:
        return None
    if isinstance(tokens, list) and tokens and isinstance(tokens[0], str):
        return tokens[0]
    return None


def client_from_args(args: argparse.Namespace) -> RustQueueClient:
    host = args.host or os.environ.get("RUSTQUEUE_HOST") or DEFAULT_HOST
    port = args.http_port
    if port is None:
        env_port = os.environ.get("RUSTQUEUE_HTTP_PORT", "").strip()
        port = int(env_port) if env_port.isdigit() else DEFAULT_HTTP_PORT
    token = args.token or os.environ.get("RUSTQUEUE_TOKEN") or _config_token(getattr(args, "config", None))
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return RustQueueClient(f"http://{host}:{port}", token=token)


def _run(args: argparse.Namespace, action: Callable[[RustQueueClient], int]) -> int:
    client = client_from_args(args)
    try:
        return action(client)
    except RustQueueError as exc:
        envelope = {"ok": False, "error": {"code": exc.code, "message": exc.message}}
        print(f"Error: {msgspec.json.encode(envelope).decode()}", file=sys.stderr)
        return 1
    except RustQueueConnectionError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _print_json(value: Any) -> None:
    print(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def _parse_data(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A rich table on a terminal when rich is installed, else plain aligned columns."""
    cells = [[str(cell) for cell in row] for row in rows]
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(title=title)
            for index, header in enumerate(headers):
                table.add_column(header, justify="left" if index == 0 else "right")
            for row in cells:
                table.add_row(*row)
            Console().print(table)
            return
    widths = [max(len(line[i]) for line in [list(headers), *cells]) for i in range(len(headers))]
    for line in [list(headers), *cells]:
        parts = [cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line)]
        print("  ".join(parts).rstrip())


# --------------------------------------------------------------------------- commands


def cmd_status(args: argparse.Namespace) -> int:
    def action(client: RustQueueClient) -> int:
        queues = client.list_queues()
        if args.json:
            _print_json(queues)
            return 0
        if not queues:
            print("No queues found.")
            return 0
        rows = [[q["name"], *(q.get("counts", {}).get(key, 0) for key in _COUNT_KEYS)] for q in queues]
        print_table(STATUS_COLUMNS, rows)
        return 0

    return _run(args, action)


def cmd_push(args: argparse.Namespace) -> int:
    def action(client: RustQueueClient) -> int:
        job_id = client.push(args.queue, args.name, _parse_data(args.data))
        if args.json:
            _print_json({"id": job_id})
        else:
            print(f"Job pushed: {job_id}")
        return 0

    return _run(args, action)


def cmd_inspect(args: argparse.Namespace) -> int:
    def action(client: RustQueueClient) -> int:
        job = client.request("GET", f"/api/v1/jobs/{urllib.parse.quote(args.id, safe='')}")["job"]
        _print_json(job)
        return 0

    return _run(args, action)


def cmd_schedules(args: argparse.Namespace) -> int:
    def action(client: RustQueueClient) -> int:
        if args.action == "list":
            return _schedules_list(client, args.json)
        if args.action == "create":
            fields: dict[str, Any] = {"name": args.name, "queue": args.queue, "job_name": args.job_name}
            if args.data is not None:
                fields["job_data"] = _parse_data(args.data)
            if args.cron is not None:
                fields["cron_expr"] = args.cron
            if args.every_ms is not None:
                fields["every_ms"] = args.every_ms
            schedule = client.create_schedule(fields)
            if args.json:
                _print_json(schedule)
            else:
                print(f"Schedule created: {schedule.get('name', args.name)}")
            return 0
        name = args.schedule_name
        {"delete": client.delete_schedule, "pause": client.pause_schedule, "resume": client.resume_schedule}[
            args.action
        ](name)
        past = {"delete": "deleted", "pause": "paused", "resume": "resumed"}[args.action]
        if args.json:
            _print_json({"ok": True, "name": name, "action": args.action})
        else:
            print(f"Schedule {past}: {name}")
        return 0

    return _run(args, action)


def _schedules_list(client: RustQueueClient, as_json: bool) -> int:
    schedules = client.list_schedules()
    if as_json:
        _print_json(schedules)
        return 0
    if not schedules:
        print("No schedules found.")
        return 0
    rows = []
    for s in schedules:
        timing = s.get("cron_expr") or (f"every {s.get('every_ms')} ms" if s.get("every_ms") else "-")
        rows.append(
            [
                s.get("name", ""),
                s.get("queue", ""),
                s.get("job_name", ""),
                timing,
                "yes" if s.get("paused") else "no",
                s.get("execution_count", 0),
                s.get("next_run_at") or "-",
            ]
        )
    print_table(("Name", "Queue", "Job", "Schedule", "Paused", "Runs", "Next run"), rows)
    return 0
