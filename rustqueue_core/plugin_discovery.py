"""Finding plugins and deciding which to load, without importing any of them.

* :func:`installed_plugins` scans the ``rustqueue`` entry-point group once per process and keeps, for
  each name, the distribution and version that offer it (pluggy records these only for plugins it
  loads itself, and a host that loads selectively must list the others too).
* :class:`PluginSelection` merges the command line, the environment and the ``[plugins]`` table of
  ``rustqueue.toml`` (in that order of precedence) into one decision: what to block, what to load.
* The static tables name the first-party plugins as plain strings, for hints and ``--available``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from rustqueue_core.errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "rustqueue"
CORE_PLUGIN = "core"
#: Plugins that cannot be blocked.
ESSENTIAL_PLUGINS = frozenset({CORE_PLUGIN})

#: First-party plugins: name → (kind, what it adds). Strings only: listing imports nothing.
FIRST_PARTY: dict[str, tuple[str, str]] = {
    "memory": ("storage", "in-memory storage for tests and ephemeral use (built in)"),
    "sqlite": ("storage", "durable SQLite storage, the default (built in)"),
    "postgres": ("storage", "PostgreSQL storage: many nodes, SKIP LOCKED claims"),
    "duckdb": ("history", "archive of finished jobs and `rustqueue history`"),
    "http": ("transport", "HTTP REST API on port 6790"),
    "tcp": ("transport", "TCP protocol on port 6789"),
    "websocket": ("transport", "live job events over WebSocket"),
    "auth": ("decisions", "bearer-token authentication"),
    "webhooks": ("events", "signed webhook deliveries with a durable outbox"),
    "metrics": ("events", "Prometheus metrics"),
    "otel": ("tracing", "OpenTelemetry traces carried in job metadata"),
    "dashboard": ("ui", "web dashboard at /dashboard"),
    "qrusty": ("transport", "qrusty-compatible API on port 6784"),
}
#: Plugins that ship inside the ``rustqueue`` distribution (no extra to install).
BUILT_IN = frozenset({"memory", "sqlite"})

#: URL scheme → name of the storage plugin (entry point) that handles it, where they differ.
SCHEME_ALIASES: dict[str, str] = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "sqlite": "sqlite",
    "memory": "memory",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_SPLIT = re.compile(r"[,\s]+")


def install_hint(name: str) -> str:
    """The command that installs first-party plugin ``name``."""
    if name in BUILT_IN:
        return "pip install rustqueue"
    return f"pip install 'rustqueue[{name}]'"


def storage_scheme(url: str) -> str:
    """``postgresql+asyncpg://u@h/db`` → ``postgresql+asyncpg``; raises ``ConfigError`` without one."""
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
        raise ConfigError(f"storage URL {url!r} has no scheme; try memory:// or sqlite:///jobs.db")
    return scheme.lower()


def storage_plugin_name(scheme: str) -> str:
    """The entry-point name expected to handle ``scheme`` (``postgresql+asyncpg`` → ``postgres``)."""
    base = scheme.split("+", 1)[0]
    return SCHEME_ALIASES.get(scheme, SCHEME_ALIASES.get(base, base))


# --------------------------------------------------------------------------- entry points


@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    """One entry point of the ``rustqueue`` group, with the distribution that declares it."""

    name: str
    module: str
    distribution: str
    version: str
    entry_point: metadata.EntryPoint

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


_installed: dict[str, tuple[InstalledPlugin, ...]] | None = None


def installed_plugins(*, refresh: bool = False) -> Mapping[str, tuple[InstalledPlugin, ...]]:
    """Entry points of the ``rustqueue`` group by name, scanned at most once per process.

    A name offered by two distributions maps to both (a collision, reported when that name is
    loaded). One distribution seen twice on ``sys.path`` counts once.
    """
    global _installed
    if _installed is None or refresh:
        found: dict[str, dict[str, InstalledPlugin]] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            version = dist.version if dist is not None else "unknown"
            key = re.sub(r"[-_.]+", "-", dist_name).lower()
            found.setdefault(ep.name, {}).setdefault(key, InstalledPlugin(ep.name, ep.value, dist_name, version, ep))
        _installed = {name: tuple(by_dist.values()) for name, by_dist in sorted(found.items())}
    return _installed


# --------------------------------------------------------------------------- selection


def _names(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [n for item in items for n in _SPLIT.split(item.strip()) if n]


@dataclass
class PluginSelection:
    """Which plugins to block and which to load, merged from every source.

    ``only`` is the exact list (``--plugins``, ``RUSTQUEUE_PLUGINS``, ``[plugins] only``; the first
    source that sets it wins, an empty value meaning none); otherwise the group is autoloaded unless
    ``autoload`` is false. ``extra`` are ``-p NAME`` additions. Blocks from every source add up; each
    records where it came from so errors can say so.
    """

    only: list[str] | None = None
    only_source: str = ""
    extra: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    autoload: bool = True

    @classmethod
    def from_sources(
        cls,
        *,
        plugins_flag: str | None = None,
        p_flags: Sequence[str] = (),
        no_plugin_flags: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
        table: Mapping[str, Any] | None = None,
        config_label: str = "rustqueue.toml",
    ) -> PluginSelection:
        """Command line, then environment, then the config file's ``[plugins]`` table."""
        sel = cls()
        env = environ if environ is not None else {}
        table = dict(table or {})
        unknown = set(table) - {"only", "disable", "autoload"}
        if unknown:
            raise ConfigError(f"{config_label} [plugins]: unknown keys {sorted(unknown)} (use only, disable, autoload)")
        for key in ("only", "disable"):
            value = table.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ConfigError(f"{config_label} [plugins] {key}: expected a list of plugin names")

        # Blocks add up, command line first so its label wins in messages.
        for value in p_flags:
            if value.startswith("no:"):
                for name in _names(value[3:]):
                    sel.blocked.setdefault(name, f"-p no:{name}")
            else:
                sel.extra.extend(n for n in _names(value) if n not in sel.extra)
        for name in _names(no_plugin_flags):
            sel.blocked.setdefault(name, f"--no-plugin={name}")
        for name in _names(env.get("RUSTQUEUE_NO_PLUGINS")):
            sel.blocked.setdefault(name, "RUSTQUEUE_NO_PLUGINS")
        for name in _names(table.get("disable")):
            sel.blocked.setdefault(name, f"{config_label} [plugins] disable")

        if plugins_flag is not None:
            sel.only, sel.only_source = _names(plugins_flag), "--plugins"
        elif "RUSTQUEUE_PLUGINS" in env:
            sel.only, sel.only_source = _names(env["RUSTQUEUE_PLUGINS"]), "RUSTQUEUE_PLUGINS"
        elif table.get("only") is not None:
            sel.only, sel.only_source = _names(table["only"]), f"{config_label} [plugins] only"

        if env.get("RUSTQUEUE_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in _TRUE:
            sel.autoload = False
        elif "autoload" in table:
            if not isinstance(table["autoload"], bool):
                raise ConfigError(f"{config_label} [plugins] autoload: expected true or false")
            sel.autoload = table["autoload"]
        return sel

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> PluginSelection:
        return cls.from_sources(environ=os.environ if environ is None else environ)

    def check(self) -> None:
        """Reject what cannot be honoured: an essential plugin blocked, a name selected and blocked."""
        for name, source in self.blocked.items():
            if name in ESSENTIAL_PLUGINS:
                raise PluginError(f"plugin {name!r} is essential and cannot be blocked ({source})")
        for names, source in ((self.only or [], self.only_source), (self.extra, "-p")):
            for name in names:
                if name in self.blocked:
                    raise PluginError(
                        f"plugin {name!r} is both selected ({source}) and blocked ({self.blocked[name]}); "
                        "remove one of them"
                    )

    def names_to_load(self, installed: Iterable[str]) -> list[str]:
        """The plugin names to load, in order (explicit lists keep their order)."""
        if self.only is not None:
            names = list(dict.fromkeys(self.only))
        elif self.autoload:
            names = [n for n in installed if n not in self.blocked]
        else:
            names = []
        names.extend(n for n in self.extra if n not in names)
        return names
