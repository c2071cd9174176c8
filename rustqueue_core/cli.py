"""The ``rustqueue`` command: ``serve``, ``plugins``, client commands and plugin commands.

Loading follows docs/plugins/loading.md: pre-parse the loading options, block, register ``core``,
select and load, resolve storage, ``check_pending``, add plugin options and commands, full parse,
merge file + environment + flags, ``configure``, then run the command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from rustqueue_core import __version__
from rustqueue_core.config import (
    CommandRegistry,
    Config,
    OptionRegistry,
    storage_url_from_config,
)
from rustqueue_core.errors import ConfigError, PluginError, RustQueueError
from rustqueue_core.plugin_discovery import PluginSelection
from rustqueue_core.plugin_listing import PluginInfo
from rustqueue_core.plugins import PluginHost

ABOUT = "Background jobs without infrastructure"
logger = logging.getLogger("rustqueue.cli")

#: Exit codes: 1 for a plugin or runtime failure, 2 for bad usage or configuration.
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _add_loading_args(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The loading options. Their values come from the pre-parse; the full parser only accepts them."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("plugins and configuration")
    group.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=default,
        help="TOML config file (default: rustqueue.toml if present)",
    )
    group.add_argument(
        "--plugins",
        metavar="A,B",
        default=default,
        help="load exactly these plugins (env RUSTQUEUE_PLUGINS; empty: none)",
    )
    group.add_argument(
        "-p",
        dest="p",
        metavar="NAME",
        action="append",
        default=default,
        help="also load plugin NAME (entry point or module); -p no:NAME blocks it",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default,
        help="debug, info, warning or error (config logging.level; default: info)",
    )
    group.add_argument(
        "--no-plugin",
        dest="no_plugin",
        metavar="NAME",
        action="append",
        default=default,
        help="block plugin NAME (env RUSTQUEUE_NO_PLUGINS=a,b)",
    )


def _preparse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_loading_args(pre, suppress=False)
    pre.add_argument("--storage", default=None)
    ns, rest = pre.parse_known_args(list(argv))
    ns.p = ns.p or []
    ns.no_plugin = ns.no_plugin or []
    return ns, rest


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (``[logging] format = "json"``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(level: str | None, config: Config | None, trace: bool) -> None:
    name = str(level or (config.get("logging.level") if config else None) or "info").upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if config is not None and config.get("logging.format") == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    if trace:
        logging.getLogger("rustqueue.plugins").setLevel(logging.DEBUG)


def build_parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="rustqueue",
        description=f"{ABOUT}: a job queue and job scheduler, embedded or as a server.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"rustqueue {__version__}")
    _add_loading_args(parser, suppress=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = subparsers.add_parser(
        "serve",
        help="run the server",
        description="Run the engine, scheduler and every installed transport until SIGINT or SIGTERM.",
    )
    _add_loading_args(serve, suppress=True)
    serve.set_defaults(func=None)

    plugins = subparsers.add_parser(
        "plugins",
        help="list installed and active plugins",
        description="List plugins: name, kind, distribution, version, hooks and status.",
    )
    _add_loading_args(plugins, suppress=True)
    plugins.add_argument("--storage", metavar="URL", default=argparse.SUPPRESS, help="storage URL to resolve")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.add_argument("--hook", metavar="NAME", help="only plugins implementing this hook")
    plugins.add_argument(
        "--available", action="store_true", help="also list first-party plugins that are not installed"
    )
    return parser, subparsers


def _register_client_commands(subparsers: Any) -> None:
    if importlib.util.find_spec("rustqueue_core.cli_client") is None:
        return
    module = importlib.import_module("rustqueue_core.cli_client")
    module.register(subparsers)


def core_options() -> OptionRegistry:
    """The core's own options, declared like any plugin's."""
    options = OptionRegistry()
    options.add(
        key="server.host",
        flag="--host",
        type=str,
        default="0.0.0.0",
        metavar="HOST",
        help="address every transport binds",
    )
    options.add(
        key="server.http_port",
        flag="--http-port",
        env="RUSTQUEUE_HTTP_PORT",
        type=int,
        default=6790,
        metavar="N",
        help="HTTP port",
    )
    options.add(
        key="server.tcp_port",
        flag="--tcp-port",
        env="RUSTQUEUE_TCP_PORT",
        type=int,
        default=6789,
        metavar="N",
        help="TCP port",
    )
    options.add(
        key="storage.url",
        flag="--storage",
        type=str,
        metavar="URL",
        help="storage URL: sqlite:///path.db, memory://, postgresql://user@host/db "
        "(default: sqlite:///data/rustqueue.db)",
    )
    options.add(
        key="server.shutdown_grace_seconds",
        flag="--grace",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds in-flight work may take to finish at shutdown",
    )
    options.add(
        key="server.event_loop",
        flag="--event-loop",
        env="RUSTQUEUE_EVENT_LOOP",
        type=str,
        default="auto",
        metavar="LOOP",
        help="event loop: auto (uvloop when installed), asyncio or uvloop",
    )
    return options


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    pre, rest = _preparse(args_list)
    command = next((token for token in rest if not token.startswith("-")), None)
    trace = os.environ.get("RUSTQUEUE_TRACE_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")
    _setup_logging(pre.log_level, None, trace)

    parser, subparsers = build_parser()
    builtin = set(subparsers.choices)
    _register_client_commands(subparsers)
    if command in set(subparsers.choices) - builtin:
        # Client commands talk to a running server; they load no plugin.
        args = parser.parse_args(args_list)
        return int(args.func(args) or 0)

    # Listing and help never stop on a broken plugin; they show it instead.
    listing = command in (None, "plugins") or "-h" in rest or "--help" in rest
    try:
        config = Config.load(pre.config, explicit=pre.config is not None)
        _setup_logging(pre.log_level, config, trace)
        host = load_plugins(pre, config, trace=trace, strict=not listing)
        options = core_options()
        commands = CommandRegistry(reserved=frozenset(subparsers.choices))
        host.add_commands(commands)
        host.add_options(options)
    except (PluginError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE if isinstance(exc, PluginError) else EXIT_USAGE
    _add_plugin_parsers(subparsers, commands, options)

    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        options.apply(config, os.environ, args if args.command == "serve" else None)
        if pre.storage:
            config.set("storage.url", pre.storage, source="--storage")
        if args.command == "serve" or getattr(args, "plugin_command", None) is not None:
            host.configure(config)
    except (ConfigError, PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILURE

    if args.command == "plugins":
        return plugins_command(args, host)
    if args.command == "serve":
        from rustqueue_core.serve import serve

        return serve(host, config)
    try:
        return int(args.plugin_command.run(args, host) or 0)
    except RustQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def load_plugins(pre: argparse.Namespace, config: Config, *, trace: bool, strict: bool) -> PluginHost:
    """Steps 2 to 6 of the loading order: block, register core, select and load, resolve storage,
    ``check_pending``. Without ``strict`` problems are warnings and the listing shows them."""
    host = PluginHost(trace=trace)
    try:
        selection = PluginSelection.from_sources(
            plugins_flag=pre.plugins,
            p_flags=pre.p,
            no_plugin_flags=pre.no_plugin,
            environ=os.environ,
            table=config.table("plugins"),
            config_label=config.label,
        )
        host.load(selection, strict=strict)
        host.resolve_storage(pre.storage or storage_url_from_config(config))
        host.check_pending()
    except (PluginError, ConfigError) as exc:
        if strict:
            raise
        print(f"warning: {exc}", file=sys.stderr)
    return host


def _add_plugin_parsers(subparsers: Any, commands: CommandRegistry, options: OptionRegistry) -> None:
    """Plugin commands become subcommands; every option gets its flag on ``serve``."""
    for cmd in commands:
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        _add_loading_args(sub, suppress=True)
        sub.add_argument("--storage", metavar="URL", default=argparse.SUPPRESS, help="storage URL")
        if cmd.configure_parser is not None:
            cmd.configure_parser(sub)
        sub.set_defaults(plugin_command=cmd)
    options.add_to_parser(subparsers.choices["serve"])


# --------------------------------------------------------------------------- rustqueue plugins


def plugins_command(args: argparse.Namespace, host: PluginHost) -> int:
    rows = host.describe(available=args.available)
    if args.hook:
        wanted = args.hook if args.hook.startswith("rustqueue_") else f"rustqueue_{args.hook}"
        rows = [row for row in rows if wanted in row.hooks]
    if args.json:
        import msgspec

        sys.stdout.write(msgspec.json.format(msgspec.json.encode(rows), indent=2).decode() + "\n")
        return 0
    print_plugin_table(rows)
    return 0


def _short(hook: str) -> str:
    return hook.removeprefix("rustqueue_")


def print_plugin_table(rows: Sequence[PluginInfo]) -> None:
    header = ("name", "kind", "distribution", "version", "status", "hooks")
    table = [
        (
            row.name,
            row.kind,
            row.distribution or "-",
            row.version or "-",
            row.status if not row.install else f"{row.status}: {row.install}",
            ", ".join(_short(h) for h in row.hooks)
            + (f" [{', '.join(s + '://' for s in row.schemes)}]" if row.schemes else ""),
        )
        for row in rows
    ]
    try:
        if not sys.stdout.isatty():
            raise ImportError("plain text when piped")
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(r[i])) for r in (header, *table)) for i in range(len(header))]
        for line in (header, *table):
            print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        return
    rich_table = Table(title="rustqueue plugins")
    for column in header:
        rich_table.add_column(column)
    for line in table:
        rich_table.add_row(*line)
    Console().print(rich_table)
