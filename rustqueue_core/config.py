"""The merged configuration: ``rustqueue.toml`` (PROTOCOL.md §7.1), environment and flags.

Precedence, highest first: command-line flag, environment variable, config file, declared default.
Options are declared once in an :class:`OptionRegistry` (by the CLI for the core's own keys and by
plugins through ``rustqueue_add_options``): flag, environment variable, dotted config key, type,
default and help, so ``--help``, the environment and the file always agree.

The original's keys keep working: ``scheduler.*``, ``jobs.*``, ``retention.*`` and ``[queues.<name>]``
become :class:`~rustqueue_core.settings.EngineSettings`; ``storage.backend`` / ``storage.path``
become a storage URL (:func:`storage_url_from_config`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import msgspec

from rustqueue_core.errors import ConfigError
from rustqueue_core.models import JobDefaults, QueueConfig
from rustqueue_core.settings import EngineSettings, parse_ttl

logger = logging.getLogger("rustqueue.config")

S = TypeVar("S")

DEFAULT_CONFIG_FILE = "rustqueue.toml"
#: Where ``serve`` keeps its jobs when nothing says otherwise: ``data/rustqueue.db`` under the working
#: directory (the original's ``./data`` directory; the directory is created).
DEFAULT_STORAGE_URL = "sqlite:///data/rustqueue.db"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_MISSING: Any = object()


def _coerce(value: Any, kind: type, where: str) -> Any:
    """Convert an environment string (or a parsed flag) to the option's type."""
    if not isinstance(value, str) or kind is str:
        return value
    text = value.strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if kind is list:
            return [item.strip() for item in text.split(",") if item.strip()]
        return kind(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Option:
    """One setting reachable by flag, environment variable and config key."""

    key: str
    flag: str | None = None
    env: str | None = None
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    owner: str | None = None

    @property
    def dest(self) -> str:
        return "opt_" + self.key.replace(".", "__")


class OptionRegistry:
    """Collects options; the CLI adds them to ``serve`` and merges their values into the config."""

    def __init__(self) -> None:
        self._options: dict[str, Option] = {}
        self.owner: str | None = None

    def add(
        self,
        *,
        key: str,
        flag: str | None = None,
        env: str | None = None,
        type: type = str,
        default: Any = None,
        help: str = "",
        choices: tuple[Any, ...] | list[Any] | None = None,
        metavar: str | None = None,
    ) -> Option:
        if key in self._options:
            raise ConfigError(f"option {key!r} is declared twice")
        if flag is not None and not flag.startswith("--"):
            raise ConfigError(f"option {key!r}: flag {flag!r} must start with '--'")
        for other in self._options.values():
            if flag is not None and other.flag == flag:
                raise ConfigError(f"flag {flag} is declared by both {other.key!r} and {key!r}")
        option = Option(key, flag, env, type, default, help, tuple(choices) if choices else None, metavar, self.owner)
        self._options[key] = option
        return option

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def __len__(self) -> int:
        return len(self._options)

    def add_to_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add every option that has a flag. Defaults stay unset so absence can be told apart."""
        for option in self:
            if option.flag is None:
                continue
            help_text = option.help
            extras = [f"config: {option.key}"]
            if option.env:
                extras.append(f"env: {option.env}")
            if option.default is not None:
                extras.append(f"default: {option.default}")
            help_text = f"{help_text} ({'; '.join(extras)})" if help_text else f"({'; '.join(extras)})"
            if option.type is bool:
                parser.add_argument(
                    option.flag,
                    dest=option.dest,
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=help_text,
                )
            else:
                parser.add_argument(
                    option.flag,
                    dest=option.dest,
                    type=option.type if option.type is not list else _comma_list,
                    default=None,
                    choices=option.choices,
                    metavar=option.metavar,
                    help=help_text,
                )

    def apply(self, config: Config, environ: Mapping[str, str], args: argparse.Namespace | None) -> None:
        """Merge defaults, environment and flags into ``config`` (flags win)."""
        for option in self:
            value = getattr(args, option.dest, None) if args is not None else None
            if value is not None:
                config.set(option.key, value, source=option.flag or option.key)
            elif option.env and environ.get(option.env) not in (None, ""):
                raw = environ[option.env]
                config.set(option.key, _coerce(raw, option.type, option.env), source=option.env)
            elif not config.has(option.key) and option.default is not None:
                config.set(option.key, option.default, source="default")


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """A CLI subcommand: ``configure_parser(parser)`` adds its arguments, ``run(args, host)`` → exit code."""

    name: str
    help: str
    configure_parser: Callable[[argparse.ArgumentParser], None] | None
    run: Callable[..., int | None]
    owner: str | None = None


class CommandRegistry:
    def __init__(self, reserved: frozenset[str] = frozenset()) -> None:
        self._commands: dict[str, Command] = {}
        self._reserved = reserved
        self.owner: str | None = None

    def add(
        self,
        name: str,
        help: str,
        configure_parser: Callable[[argparse.ArgumentParser], None] | None,
        run: Callable[..., int | None],
    ) -> Command:
        if name in self._reserved:
            raise ConfigError(f"command {name!r} is built in and cannot be replaced (plugin {self.owner!r})")
        if name in self._commands:
            other = self._commands[name].owner
            raise ConfigError(f"command {name!r} is added by both plugin {other!r} and plugin {self.owner!r}")
        command = Command(name, help, configure_parser, run, self.owner)
        self._commands[name] = command
        return command

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)


# --------------------------------------------------------------------------- config


@dataclass
class Config:
    """Nested tables from TOML plus values set by environment and flags, read by dotted key."""

    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, *, explicit: bool = False) -> Config:
        """Read a TOML file. A missing file gives the defaults (as the original), with a warning when
        it was named explicitly; invalid TOML raises ``ConfigError``."""
        if path is None:
            candidate = Path(DEFAULT_CONFIG_FILE)
            if not candidate.is_file():
                return cls()
            path = candidate
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            if explicit:
                logger.warning("config file %s not found; using defaults", path)
            return cls(path=None)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        return cls.from_toml(raw, path=path)

    @classmethod
    def from_toml(cls, text: str | bytes, *, path: Path | None = None) -> Config:
        try:
            data = msgspec.toml.decode(text)
        except msgspec.DecodeError as exc:
            raise ConfigError(f"invalid TOML in {path or 'config'}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"invalid config {path or ''}: expected a table")
        return cls(data=data, path=path, sources={})

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "config"

    def has(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def get(self, key: str, default: Any = None) -> Any:
        """The value at dotted ``key`` (``"server.http_port"``), or ``default``."""
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def set(self, key: str, value: Any, *, source: str = "code") -> None:
        node = self.data
        *parents, last = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{self.label}: {part!r} must be a table to hold {key!r}")
            node = child
        node[last] = value
        self.sources[key] = source

    def table(self, name: str) -> dict[str, Any]:
        value = self.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.label}: [{name}] must be a table")
        return value

    def section(self, name: str, kind: type[S]) -> S:
        """Convert table ``name`` to ``kind`` (a msgspec Struct); bad values raise ``ConfigError``."""
        try:
            return msgspec.convert(self.table(name), kind, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{self.label} [{name}]: {exc}") from exc


# --------------------------------------------------------------------------- original keys → settings


def _typed(config: Config, key: str, kind: type, default: Any = None) -> Any:
    value = config.get(key, default)
    if value is None:
        return None
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{config.label}: {key}: {exc}") from None


def engine_settings_from_config(config: Config, base: EngineSettings | None = None) -> EngineSettings:
    """Map ``scheduler.*``, ``jobs.*``, ``retention.*``, ``memory.*``, ``[queues.<name>]`` onto
    ``EngineSettings``.

    Keys absent from the file keep ``base``'s values, except ``stall_check_interval_ms``, whose server
    default is the original's 5000 ms.
    """
    base = base or EngineSettings()
    changes: dict[str, Any] = {}
    for key, attr in (
        ("scheduler.tick_interval_ms", "tick_interval_ms"),
        ("scheduler.stall_check_interval_ms", "stall_check_interval_ms"),
        ("jobs.stall_timeout_ms", "stall_timeout_ms"),
        ("jobs.max_dag_depth", "max_dag_depth"),
    ):
        value = _typed(config, key, int)
        if value is not None:
            changes[attr] = value
    changes.setdefault("stall_check_interval_ms", 5_000)
    for key, attr in (
        ("memory.limit_mb", "memory_limit_mb"),
        ("memory.pressure_threshold", "memory_pressure_threshold"),
        ("memory.critical_threshold", "memory_critical_threshold"),
        ("memory.exit_threshold", "memory_exit_threshold"),
    ):
        fraction = _typed(config, key, float)
        if fraction is not None:
            changes[attr] = fraction

    defaults = {
        field_name: _typed(config, f"jobs.default_{field_name}", kind)
        for field_name, kind in (
            ("max_attempts", int),
            ("backoff", str),
            ("backoff_delay_ms", int),
            ("timeout_ms", int),
            ("ttl_ms", int),
        )
    }
    if any(v is not None for v in defaults.values()):
        if defaults["backoff"] not in (None, "fixed", "linear", "exponential"):
            raise ConfigError(f"{config.label}: jobs.default_backoff must be fixed, linear or exponential")
        changes["job_defaults"] = JobDefaults(**{k: v for k, v in defaults.items() if v is not None})

    retention = config.table("retention")
    if retention:
        current = base.retention
        ttl: dict[str, int | None] = {}
        for name in ("completed", "failed", "dlq", "cancelled"):
            if f"{name}_ttl" in retention:
                ttl[f"{name}_ttl_ms"] = parse_ttl(retention[f"{name}_ttl"], f"retention.{name}_ttl")
        if "interval" in retention:
            interval = parse_ttl(retention["interval"], "retention.interval")
            if not interval:
                raise ConfigError("retention.interval must be a positive duration")
            ttl["interval_ms"] = interval
        changes["retention"] = msgspec.structs.replace(current, **ttl) if ttl else current

    queues = []
    for name, table in config.table("queues").items():
        if not isinstance(table, dict):
            raise ConfigError(f"{config.label}: [queues.{name}] must be a table")
        try:
            queues.append(msgspec.convert({**table, "name": name}, QueueConfig, strict=False))
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{config.label}: [queues.{name}]: {exc}") from None
    if queues:
        changes["queues"] = tuple(queues)
    try:
        settings = msgspec.structs.replace(base, **changes)
    except TypeError as exc:  # pragma: no cover - a mapping bug, not user input
        raise ConfigError(str(exc)) from exc
    return settings.validate()


def storage_url_from_config(config: Config, default: str = DEFAULT_STORAGE_URL) -> str:
    """``storage.url`` if set; else the original's ``storage.backend`` + ``storage.path``; else ``default``.

    ``redb`` (the original's default engine) and ``sqlite`` map to ``<path>/rustqueue.db``, ``hybrid``
    to the same file in hybrid mode, ``in_memory`` to ``memory://``, ``postgres`` to
    ``storage.postgres_url``.
    """
    url = config.get("storage.url")
    if url:
        return str(url)
    backend = config.get("storage.backend")
    if backend is None:
        return default
    backend = str(backend).lower()
    if backend in ("in_memory", "memory"):
        return "memory://"
    if backend == "postgres":
        pg = config.get("storage.postgres_url")
        if not pg:
            raise ConfigError(f"{config.label}: storage.backend = 'postgres' needs storage.postgres_url")
        return str(pg)
    if backend not in ("redb", "sqlite", "hybrid"):
        raise ConfigError(
            f"{config.label}: unknown storage.backend {backend!r} (redb, sqlite, hybrid, in_memory, postgres)"
        )
    directory = str(config.get("storage.path", "./data")).rstrip("/") or "/"
    path = f"{directory}/rustqueue.db" if directory != "/" else "/rustqueue.db"
    query: dict[str, Any] = {}
    durability = config.get("storage.durability")
    if durability in ("normal", "full"):
        query["durability"] = durability
    if backend == "hybrid":
        query["mode"] = "hybrid"
        snapshot_ms = _typed(config, "storage.hybrid_snapshot_interval_ms", int)
        if snapshot_ms is not None:
            query["snapshot_interval"] = snapshot_ms / 1000
        max_dirty = _typed(config, "storage.hybrid_max_dirty", int)
        if max_dirty is not None:
            query["max_dirty"] = max_dirty
    # sqlite:///relative/path and sqlite:////absolute/path
    url = f"sqlite:///{path}"
    return f"{url}?{urlencode(query)}" if query else url


def sqlite_file_from_url(url: str) -> Path | None:
    """The database file of a ``sqlite:`` URL (``None`` for other schemes or ``:memory:``)."""
    if not url.lower().startswith("sqlite:"):
        return None
    rest = url.split(":", 1)[1].split("?", 1)[0]
    if rest.startswith("//"):
        rest = rest[2:]
        rest = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel → rel; sqlite:////abs → /abs
    if not rest or rest == ":memory:":
        return None
    return Path(rest)
