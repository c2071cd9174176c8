"""PluginHost: a typed facade over one ``pluggy.PluginManager``.

There is one host per ``RustQueue`` and per CLI run, never one per process. The rest of the core
calls the typed methods below and never the untyped ``pm.hook`` relay; plugin-owned hooks (such as
the http plugin's ``rustqueue_http_routes``) are reached through :attr:`PluginHost.hook`.

Hot paths: ``has_before_push`` and ``has_jobs_changed`` are plain booleans recomputed on every
register/unregister, so a hook nobody implements costs one attribute read. ``jobs_changed`` calls a
snapshot of its implementations directly, each in its own ``try``, so one failing consumer never
starves the others (pluggy would stop at the first exception).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

import pluggy

from rustqueue_core import __version__, hookspecs
from rustqueue_core.builtin import core
from rustqueue_core.errors import PluginError
from rustqueue_core.models import (
    ANONYMOUS,
    Credentials,
    HealthCheck,
    JobEvent,
    NewJob,
    Principal,
    StorageSpec,
    TransportSpec,
    WorkerInfo,
)
from rustqueue_core.plugin_discovery import (
    CORE_PLUGIN,
    FIRST_PARTY,
    PluginSelection,
    install_hint,
    installed_plugins,
    storage_plugin_name,
    storage_scheme,
)

if TYPE_CHECKING:
    from rustqueue_core.config import CommandRegistry, Config, OptionRegistry
    from rustqueue_core.engine import Engine
    from rustqueue_core.plugin_listing import PluginInfo

logger = logging.getLogger("rustqueue.plugins")

T = TypeVar("T")


#: Module attribute: ``rustqueue_plugin_factory(host) -> object``. When an entry-point module defines it,
#: the host registers the object it returns (under the entry point's name) instead of the module, so a
#: plugin keeps its state per host, and therefore per engine, with no process-global state.
PLUGIN_FACTORY = "rustqueue_plugin_factory"


class PluginLoadError(PluginError):
    """A plugin failed to load, register or start: names it, its distribution and the way out."""

    def __init__(self, name: str, exc: BaseException, *, during: str = "load", label: str | None = None):
        self.plugin = name
        self.label = label
        what = f"plugin {name!r}" + (f" ({label})" if label else "")
        super().__init__(
            f"{what} failed to {during}: {type(exc).__name__}: {exc}. Start without it with --no-plugin={name}"
        )


class HookCall(NamedTuple):
    """One recorded hook call (see :meth:`PluginHost.recording`)."""

    name: str
    kwargs: dict[str, Any]


@dataclass(slots=True)
class Registration:
    """A registered plugin and where it came from."""

    name: str
    plugin: object
    module: str
    distribution: str | None
    version: str | None


def _flatten(owner: str, hook: str, value: Any, kind: type[T]) -> list[T]:
    items = list(value) if isinstance(value, list | tuple) else [value]
    for item in items:
        if not isinstance(item, kind):
            raise PluginError(f"plugin {owner!r} returned {type(item).__name__} from {hook}, expected {kind.__name__}")
    return items


class PluginHost:
    """Loads plugins by the rules of ``docs/plugins/loading.md`` and calls their hooks, typed."""

    def __init__(self, *, config: Config | None = None, trace: bool = False) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.config: Config | None = config
        self.trace = trace
        self.has_before_push = False
        self.has_jobs_changed = False
        self._decides_auth = False
        self._decides_access = False
        #: Failures of ``jobs_changed`` implementations, per plugin name.
        self.consumer_failures: Counter[str] = Counter()
        self._registered: dict[str, Registration] = {}
        self._failed: dict[str, tuple[str, str | None]] = {}
        self._blocked: dict[str, str] = {}
        self._consumers: list[tuple[Callable[..., Any], bool, str]] = []
        self._recorders: list[list[HookCall]] = []
        self._storage: list[tuple[str, StorageSpec]] | None = None
        if trace:
            self.pm.add_hookcall_monitoring(self._trace_before, self._trace_after)
        # Historic: every plugin registered from now on gets it at registration.
        self.pm.hook.rustqueue_addhooks.call_historic(kwargs={"host": self})
        self.register(core, CORE_PLUGIN, distribution="rustqueue", version=__version__)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def embedded(cls, plugins: Sequence[object | str] = (), *, autoload: bool = False) -> PluginHost:
        """The host of an embedded engine: ``core`` plus ``plugins`` (objects, entry-point names or
        dotted modules). The environment is read only when ``autoload`` is true."""
        host = cls()
        if autoload:
            host.load(PluginSelection.from_environment())
        for plugin in plugins:
            if isinstance(plugin, str):
                host.load_name(plugin)
            else:
                host.register(plugin)
        return host

    # ------------------------------------------------------------------ loading
    def load(self, selection: PluginSelection, *, strict: bool = True) -> None:
        """Block, then load the selected entry points and modules (steps 2 to 4 of the loading order).

        With ``strict`` a failure raises :class:`PluginError`; otherwise it is recorded and shown by
        :meth:`describe` (``rustqueue plugins`` never stops).
        """
        selection.check()
        installed = installed_plugins()
        for name, source in selection.blocked.items():
            self.pm.set_blocked(name)
            self._blocked[name] = source
            if name not in installed and "." not in name:
                logger.warning("blocked plugin %r (%s) matches no installed plugin", name, source)
        names = selection.names_to_load(installed)
        for name in names:
            try:
                self.load_name(name)
            except PluginError as exc:
                if strict:
                    raise
                self._failed.setdefault(name, (str(exc), None))

    def load_name(self, name: str) -> object:
        """Load and register one plugin by entry-point name or dotted module path."""
        existing = self.pm.get_plugin(name)
        if existing is not None:
            return existing
        if self.pm.is_blocked(name):
            raise PluginError(f"plugin {name!r} is blocked ({self._blocked.get(name, 'blocked')})")
        installed = installed_plugins()
        candidates = installed.get(name, ())
        if len(candidates) > 1:
            offered = " and ".join(c.label for c in candidates)
            raise PluginError(f"plugin name {name!r} is offered by two distributions: {offered}; uninstall one")
        if candidates:
            record = candidates[0]
            try:
                module = record.entry_point.load()
            except Exception as exc:
                self._failed[name] = (f"{type(exc).__name__}: {exc}", record.label)
                raise PluginLoadError(name, exc, label=record.label) from exc
            self._register_loaded(module, name, record.distribution, record.version)
            return module
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                available = ", ".join(installed) or "none"
                raise PluginError(
                    f"unknown plugin {name!r}: not an installed plugin nor an importable module. "
                    f"Installed plugins: {available}"
                ) from exc
            self._failed[name] = (f"{type(exc).__name__}: {exc}", None)
            raise PluginLoadError(name, exc) from exc
        except Exception as exc:
            self._failed[name] = (f"{type(exc).__name__}: {exc}", None)
            raise PluginLoadError(name, exc) from exc
        self._register_loaded(module, name, None, None)
        return module

    def _register_loaded(self, module: ModuleType, name: str, dist: str | None, version: str | None) -> None:
        if self.pm.is_registered(module) or self.pm.get_plugin(name) is not None:
            return  # e.g. ``-p rustqueue_plugin_hello`` after entry point ``hello``
        try:
            self.register(module, name, distribution=dist, version=version)
        except Exception as exc:
            label = f"{dist} {version}" if dist else None
            self._failed[name] = (f"{type(exc).__name__}: {exc}", label)
            raise PluginLoadError(name, exc, during="register", label=label) from exc

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> str | None:
        """Register a plugin object or module; ``None`` if its name is blocked. Historic setup hooks
        (``addhooks``, ``add_options``, ``configure``) reach it at once. A module that defines
        ``rustqueue_plugin_factory(host)`` is registered as the object that factory returns."""
        factory = getattr(plugin, PLUGIN_FACTORY, None) if isinstance(plugin, ModuleType) else None
        if callable(factory):
            if name is None:
                name = cast(ModuleType, plugin).__name__
            if self.pm.is_blocked(name):
                return None
            plugin = factory(self)
        try:
            registered = self.pm.register(plugin, name)
        except Exception:
            # A historic hook of the plugin may raise after pluggy recorded it: leave no half state.
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise
        if registered is None:
            return None
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        self._registered[registered] = Registration(registered, plugin, module, distribution, version)
        self._failed.pop(registered, None)
        self._plugins_changed()
        return registered

    def unregister(self, plugin: object | str) -> None:
        """Remove a plugin by object or name (unknown ones are ignored); ``core`` stays."""
        name = plugin if isinstance(plugin, str) else self.pm.get_name(plugin)
        if name == CORE_PLUGIN:
            raise PluginError("the core plugin cannot be unregistered")
        if name is None or self.pm.get_plugin(name) is None:
            return
        self.pm.unregister(name=name)
        self._registered.pop(name, None)
        self._plugins_changed()

    def add_hookspecs(self, module: ModuleType | type) -> None:
        """Add a plugin's own hook specifications (call from ``rustqueue_addhooks``)."""
        self.pm.add_hookspecs(module)

    @property
    def hook(self) -> Any:
        """The raw hook relay, for plugin-owned hooks such as ``rustqueue_http_routes``."""
        return self.pm.hook

    def check_pending(self) -> None:
        """Fail on implementations of unknown hooks (misspelled, or a spec whose plugin is absent and
        that the implementer did not mark ``optionalhook``), naming the plugin."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or str(exc.plugin)
            raise PluginError(f"{exc}. Start without it with --no-plugin={name}") from exc

    def is_active(self, name: str) -> bool:
        return name in self._registered

    def plugin_names(self) -> list[str]:
        return list(self._registered)

    def _plugins_changed(self) -> None:
        self.has_before_push = bool(self.pm.hook.rustqueue_before_push.get_hookimpls())
        # Decisions are asked per request: with only the core defaults registered, answer without pluggy.
        hook = self.pm.hook
        self._decides_auth = any(i.plugin_name != CORE_PLUGIN for i in hook.rustqueue_authenticate.get_hookimpls())
        self._decides_access = any(i.plugin_name != CORE_PLUGIN for i in hook.rustqueue_authorize.get_hookimpls())
        consumers = []
        for impl in reversed(self.pm.hook.rustqueue_jobs_changed.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                logger.warning("plugin %r: wrappers of rustqueue_jobs_changed are ignored", impl.plugin_name)
                continue
            consumers.append((impl.function, "events" in impl.argnames, impl.plugin_name))
        self._consumers = consumers
        self.has_jobs_changed = bool(consumers)
        self._storage = None

    # ------------------------------------------------------------------ tracing and recording
    @contextlib.contextmanager
    def recording(self) -> Iterator[list[HookCall]]:
        """Record every hook call (name and keyword arguments) made while the block runs; for tests.

        ``jobs_changed`` is recorded too although it bypasses pluggy's relay.
        """
        calls: list[HookCall] = []

        def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, object]) -> None:
            calls.append(HookCall(hook_name, dict(kwargs)))

        undo = self.pm.add_hookcall_monitoring(before, lambda *args: None)
        self._recorders.append(calls)
        try:
            yield calls
        finally:
            undo()
            self._recorders.remove(calls)

    def _trace_before(self, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, object]) -> None:
        logger.debug("hook %s -> %s", hook_name, [i.plugin_name for i in impls])

    def _trace_after(self, outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, object]) -> None:
        exc = outcome.exception
        logger.debug("hook %s done%s", hook_name, f" raised {exc!r}" if exc else "")

    # ------------------------------------------------------------------ calling, with the owner's name
    def _collect(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call each implementation in pluggy's order; return ``(plugin, result)`` for non-None
        results. An exception names the plugin it came from."""
        results: list[tuple[str, Any]] = []
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                continue
            if self.trace:
                logger.debug("hook %s -> %s", hook_name, impl.plugin_name)
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginLoadError(
                    impl.plugin_name,
                    exc,
                    during=f"run {hook_name}",
                    label=self.distribution_label(impl.plugin_name),
                ) from exc
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def distribution_of(self, name: str) -> tuple[str, str | None] | None:
        """``(distribution, version)`` of a registered plugin, if known. A plugin registered by another
        (a webhooks engine binding by ``webhooks``) belongs to the distribution of its top-level package."""
        info = self._registered.get(name)
        if info is None:
            return None
        if info.distribution:
            return info.distribution, info.version
        package = info.module.split(".", 1)[0]
        for candidates in installed_plugins().values():
            for candidate in candidates:
                if candidate.module.split(".", 1)[0] == package:
                    return candidate.distribution, candidate.version
        return None

    def distribution_label(self, name: str) -> str | None:
        """``rustqueue-webhooks 0.1.0``, for messages."""
        dist = self.distribution_of(name)
        return f"{dist[0]} {dist[1]}" if dist else None

    # ------------------------------------------------------------------ setup hooks
    def add_options(self, options: OptionRegistry) -> None:
        self.pm.hook.rustqueue_add_options.call_historic(kwargs={"options": options})

    def add_commands(self, commands: CommandRegistry) -> None:
        """Each plugin adds its subcommands; the registry records which plugin added each."""
        for impl in reversed(self.pm.hook.rustqueue_add_commands.get_hookimpls()):
            commands.owner = impl.plugin_name
            try:
                impl.function(*({"commands": commands}[a] for a in impl.argnames))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginLoadError(
                    impl.plugin_name,
                    exc,
                    during="add commands",
                    label=self.distribution_label(impl.plugin_name),
                ) from exc
            finally:
                commands.owner = None

    def configure(self, config: Config) -> None:
        """Hand the merged configuration to every plugin (historic: late plugins get it too)."""
        self.config = config
        self.pm.hook.rustqueue_configure.call_historic(kwargs={"config": config})

    # ------------------------------------------------------------------ providers
    def storage_backends(self) -> list[StorageSpec]:
        return [spec for _, spec in self._storage_specs()]

    def _storage_specs(self) -> list[tuple[str, StorageSpec]]:
        if self._storage is None:
            hook = "rustqueue_storage_backends"
            self._storage = [
                (owner, spec)
                for owner, value in self._collect(hook)
                for spec in _flatten(owner, hook, value, StorageSpec)
            ]
        return self._storage

    def _match_storage(self, scheme: str) -> StorageSpec | None:
        base = scheme.split("+", 1)[0]
        exact = [(o, s) for o, s in self._storage_specs() if scheme in s.schemes]
        matches = exact or [(o, s) for o, s in self._storage_specs() if base in s.schemes]
        owners = {o for o, _ in matches}
        if len(owners) > 1:
            raise PluginError(
                f"storage scheme '{scheme}://' is claimed by several plugins: {', '.join(sorted(owners))}; "
                "block one with --no-plugin=NAME"
            )
        return matches[0][1] if matches else None

    def resolve_storage(self, url: str) -> StorageSpec:
        """The backend for ``url``'s scheme, loading the entry point named for it on demand."""
        scheme = storage_scheme(url)
        spec = self._match_storage(scheme)
        if spec is not None:
            return spec
        name = storage_plugin_name(scheme)
        if name not in self._registered:
            if self.pm.is_blocked(name):
                raise PluginError(
                    f"the storage plugin {name!r} for '{scheme}://' is blocked ({self._blocked.get(name)})"
                )
            if name in installed_plugins():
                self.load_name(name)
                spec = self._match_storage(scheme)
                if spec is not None:
                    return spec
        schemes = sorted({s for spec in self.storage_backends() for s in spec.schemes})
        message = f"no storage plugin handles '{scheme}://'."
        if name in FIRST_PARTY and name not in installed_plugins():
            message += f"\n       Install it with: {install_hint(name)}"
        elif schemes:
            message += f"\n       Schemes available: {', '.join(s + '://' for s in schemes)}"
        raise PluginError(message)

    def named_transports(self) -> list[tuple[str, TransportSpec]]:
        hook = "rustqueue_transports"
        pairs = [(o, s) for o, v in self._collect(hook) for s in _flatten(o, hook, v, TransportSpec)]
        seen: dict[str, str] = {}
        for owner, spec in pairs:
            if spec.name in seen:
                raise PluginError(
                    f"transport {spec.name!r} is offered by plugins {seen[spec.name]!r} and {owner!r}; "
                    "block one with --no-plugin=NAME"
                )
            seen[spec.name] = owner
        return pairs

    def transports(self) -> list[TransportSpec]:
        return [spec for _, spec in self.named_transports()]

    # ------------------------------------------------------------------ lifecycle
    def named_lifespans(self, engine: Engine) -> list[tuple[str, Any]]:
        return self._collect("rustqueue_lifespan", engine=engine)

    def lifespans(self, engine: Engine) -> list[Any]:
        """Async context managers to enter in order (and exit in reverse) around serving."""
        return [cm for _, cm in self.named_lifespans(engine)]

    def health(self, engine: Engine) -> list[HealthCheck]:
        """Every plugin's checks; a plugin whose check raises is reported ``down``, not propagated."""
        checks: list[HealthCheck] = []
        for impl in reversed(self.pm.hook.rustqueue_health.get_hookimpls()):
            try:
                value = impl.function(*({"engine": engine}[a] for a in impl.argnames))
                if value is not None:
                    checks.extend(_flatten(impl.plugin_name, "rustqueue_health", value, HealthCheck))
            except Exception as exc:
                checks.append(
                    HealthCheck(component=impl.plugin_name, state="down", detail=f"{type(exc).__name__}: {exc}")
                )
        return checks

    # ------------------------------------------------------------------ decisions
    def authenticate(self, credentials: Credentials) -> Principal:
        """The caller's principal; raises ``AuthError`` (or ``RateLimited``) to reject."""
        if not (self._decides_auth or self.trace or self._recorders):
            return ANONYMOUS
        result = self.pm.hook.rustqueue_authenticate(credentials=credentials)
        return ANONYMOUS if result is None else result

    def authorize(self, principal: Principal, action: str, queue: str | None) -> bool:
        if not (self._decides_access or self.trace or self._recorders):
            return True
        result = self.pm.hook.rustqueue_authorize(principal=principal, action=action, queue=queue)
        return True if result is None else bool(result)

    # ------------------------------------------------------------------ jobs
    def before_push(self, jobs: Sequence[NewJob], principal: Principal | None) -> None:
        """Once per push batch; an exception rejects the batch. Guard with ``has_before_push``."""
        self.pm.hook.rustqueue_before_push(jobs=jobs, principal=principal)

    def worker_middleware(self, queue: str, info: WorkerInfo) -> list[Any]:
        """Middlewares ``async (job, call_next)``, outermost first; called once per worker start."""
        return [mw for _, mw in self._collect("rustqueue_worker_middleware", queue=queue, worker=info)]

    def jobs_changed(self, events: Sequence[JobEvent]) -> None:
        """Deliver one committed batch to every consumer, each isolated. Guard with ``has_jobs_changed``."""
        if self._recorders:
            for calls in self._recorders:
                calls.append(HookCall("rustqueue_jobs_changed", {"events": events}))
        for function, takes_events, plugin_name in self._consumers:
            try:
                if self.trace:
                    logger.debug("hook rustqueue_jobs_changed -> %s (%d events)", plugin_name, len(events))
                if takes_events:
                    function(events)
                else:
                    function()
            except Exception:
                self.consumer_failures[plugin_name] += 1
                logger.exception(
                    "plugin %r failed in rustqueue_jobs_changed (%d failures so far)",
                    plugin_name,
                    self.consumer_failures[plugin_name],
                )

    # ------------------------------------------------------------------ listing
    def registrations(self) -> list[Registration]:
        """Registered plugins in registration order."""
        return list(self._registered.values())

    @property
    def failures(self) -> Mapping[str, tuple[str, str | None]]:
        """Plugins that failed to load: name → (reason, ``distribution version`` or None)."""
        return self._failed

    @property
    def blocked(self) -> Mapping[str, str]:
        """Blocked plugin names → where the block came from (``-p no:x``, ``RUSTQUEUE_NO_PLUGINS``...)."""
        return self._blocked

    def storage_owners(self) -> list[tuple[str, StorageSpec]]:
        """``(plugin name, spec)`` for every storage backend offered."""
        return list(self._storage_specs())

    def describe(self, *, available: bool = False) -> list[PluginInfo]:
        """Rows for ``rustqueue plugins``: loaded, failed, blocked and unselected plugins. Never raises."""
        from rustqueue_core.plugin_listing import describe_plugins

        return describe_plugins(self, available=available)


def bind_to_engine(engine: Any, plugin: Any, name: str) -> Callable[[], None]:
    """Register ``plugin`` (hook implementations bound to one engine's state) on that engine's host for
    as long as a lifespan runs, or, for an engine without a host, its ``rustqueue_jobs_changed`` as an
    in-process event listener. Returns the function that detaches it again."""
    host = getattr(engine, "host", None)
    if host is None:
        remove: Callable[[], None] = engine.add_listener(plugin.rustqueue_jobs_changed)
        return remove
    host.register(plugin, name)

    def detach() -> None:
        with contextlib.suppress(ValueError, KeyError):
            host.unregister(plugin)

    return detach
