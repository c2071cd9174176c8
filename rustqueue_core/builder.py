"""RustQueueBuilder: configure an embedded engine, then build it (SEMANTICS.md §7.1).

    rq = await RustQueue.sqlite("jobs.db").stall_timeout(60).queue("emails", lease_ms=120_000).build()
    async with RustQueue.memory().build() as rq: ...
    rq = RustQueue.sqlite("jobs.db").build_sync()        # SyncRustQueue, usable without asyncio

Setters validate what they can at once; everything is checked again when the engine is created, so a
bad setting fails at build and never at the first push. Embedding registers only the ``core`` plugin,
the storage plugin its URL needs and ``plugins([...])``; it reads no environment variable unless
``autoload_plugins(True)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import msgspec

from rustqueue_core.errors import ConfigError
from rustqueue_core.models import JobDefaults, QueueConfig
from rustqueue_core.plugin_discovery import storage_scheme
from rustqueue_core.settings import EngineSettings, parse_ttl

if TYPE_CHECKING:
    from rustqueue_core.clock import Clock
    from rustqueue_core.engine import RustQueue
    from rustqueue_core.plugins import PluginHost
    from rustqueue_core.sync import SyncRustQueue

Duration = float | int | timedelta
_QUEUE_FIELDS = frozenset(QueueConfig.__struct_fields__) - {"name", "created_at"}
_DEFAULT_FIELDS = frozenset(JobDefaults.__struct_fields__)


def _duration_ms(value: Duration, what: str, *, positive: bool = True) -> int:
    """Seconds (int, float) or a ``timedelta`` → integer milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigError(f"{what}: expected seconds or a timedelta, got {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    ms = round(seconds * 1000)
    if ms <= 0 if positive else ms < 0:
        raise ConfigError(f"{what} must be greater than zero" if positive else f"{what} must not be negative")
    return ms


def _ttl_ms(value: str | Duration | None, what: str) -> int | None:
    """Retention TTL: ``"7d"``/``"off"`` strings, seconds, a timedelta, or None (= off)."""
    if value is None or isinstance(value, str):
        return parse_ttl(value, what)
    return _duration_ms(value, what, positive=False)


def sqlite_url(path: str | Path) -> str:
    """``sqlite:///`` URL of a file path (relative paths stay relative to the working directory)."""
    text = str(path)
    if text == ":memory:":
        raise ConfigError("use RustQueue.memory() for an in-memory queue")
    return f"sqlite:///{text}"


class RustQueueBuilder:
    """Collects settings for one engine; ``build()`` creates and starts it."""

    def __init__(self, url: str) -> None:
        storage_scheme(url)  # fails early on a URL without a scheme
        base, _, query = url.partition("?")
        self._url_base = base
        self._query: dict[str, str] = dict(parse_qsl(query, keep_blank_values=True))
        self._settings = EngineSettings()
        self._changes: dict[str, Any] = {}
        self._retention: dict[str, int | None] = {}
        self._queues: dict[str, dict[str, Any]] = {}
        self._job_defaults: dict[str, Any] = {}
        self._plugins: list[object | str] = []
        self._autoload = False
        self._clock: Clock | None = None
        self._worker_registry: Any = None
        self._host: PluginHost | None = None
        self._storage_options: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"{self._url_base}?{urlencode(self._query)}" if self._query else self._url_base

    @property
    def scheme(self) -> str:
        return storage_scheme(self._url_base)

    # ------------------------------------------------------------------ engine settings
    def settings(self, settings: EngineSettings) -> RustQueueBuilder:
        """Start from a whole ``EngineSettings`` (the CLI uses this); later setters refine it."""
        self._settings = settings
        return self

    def stall_timeout(self, t: Duration) -> RustQueueBuilder:
        self._changes["stall_timeout_ms"] = _duration_ms(t, "stall_timeout")
        return self

    def tick_interval(self, t: Duration) -> RustQueueBuilder:
        self._changes["tick_interval_ms"] = _duration_ms(t, "tick_interval")
        return self

    def stall_check_interval(self, t: Duration) -> RustQueueBuilder:
        self._changes["stall_check_interval_ms"] = _duration_ms(t, "stall_check_interval", positive=False)
        return self

    def retention(
        self,
        *,
        completed: str | Duration | None = "7d",
        dlq: str | Duration | None = "90d",
        cancelled: str | Duration | None = "7d",
        failed: str | Duration | None = "30d",
        interval: Duration | None = None,
    ) -> RustQueueBuilder:
        """TTLs as ``"7d"``-style strings, seconds or timedeltas; ``"off"`` or ``None`` keeps forever."""
        self._retention = {
            "completed_ttl_ms": _ttl_ms(completed, "retention completed"),
            "dlq_ttl_ms": _ttl_ms(dlq, "retention dlq"),
            "cancelled_ttl_ms": _ttl_ms(cancelled, "retention cancelled"),
            "failed_ttl_ms": _ttl_ms(failed, "retention failed"),
        }
        if interval is not None:
            self._retention["interval_ms"] = _duration_ms(interval, "retention interval")
        return self

    def max_dag_depth(self, n: int) -> RustQueueBuilder:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"max_dag_depth must be an integer of at least 1, got {n!r}")
        self._changes["max_dag_depth"] = n
        return self

    def queue(self, name: str, **config: Any) -> RustQueueBuilder:
        """Queue settings applied at start over stored values (SEMANTICS §1.4 keys)."""
        unknown = set(config) - _QUEUE_FIELDS
        if unknown:
            raise ConfigError(f"queue {name!r}: unknown settings {sorted(unknown)}; known: {sorted(_QUEUE_FIELDS)}")
        self._queues.setdefault(name, {}).update(config)
        return self

    def rate_limit(self, queue: str, per_second: float, burst: int | None = None) -> RustQueueBuilder:
        if isinstance(per_second, bool) or not isinstance(per_second, int | float) or per_second <= 0:
            raise ConfigError(f"rate_limit({queue!r}): per_second must be a positive number")
        if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
            raise ConfigError(f"rate_limit({queue!r}): burst must be a positive integer")
        return self.queue(queue, rate_limit_per_second=float(per_second), rate_limit_burst=burst)

    def job_defaults(self, **defaults: Any) -> RustQueueBuilder:
        unknown = set(defaults) - _DEFAULT_FIELDS
        if unknown:
            raise ConfigError(f"job_defaults: unknown keys {sorted(unknown)}; known: {sorted(_DEFAULT_FIELDS)}")
        self._job_defaults.update(defaults)
        return self

    def memory_limit(self, mb: float, threshold: float = 0.8) -> RustQueueBuilder:
        self._changes["memory_limit_mb"] = mb
        self._changes["memory_pressure_threshold"] = threshold
        return self

    def housekeeping(self, enabled: bool = True) -> RustQueueBuilder:
        self._changes["housekeeping"] = bool(enabled)
        return self

    # ------------------------------------------------------------------ storage
    def durability(self, level: str) -> RustQueueBuilder:
        if level not in ("normal", "full"):
            raise ConfigError(f"durability must be 'normal' or 'full', got {level!r}")
        self._query["durability"] = level
        return self

    def hybrid(self, snapshot_interval: float = 1.0, max_dirty: int = 5000) -> RustQueueBuilder:
        if snapshot_interval <= 0:
            raise ConfigError("hybrid snapshot_interval must be greater than zero")
        if max_dirty < 1:
            raise ConfigError("hybrid max_dirty must be at least 1")
        self._query.update(mode="hybrid", snapshot_interval=str(snapshot_interval), max_dirty=str(max_dirty))
        return self

    def storage_options(self, **options: Any) -> RustQueueBuilder:
        """Extra options handed to the storage factory (besides the URL's query)."""
        self._storage_options.update(options)
        return self

    # ------------------------------------------------------------------ plugins, clock, workers
    def plugins(self, plugins: Sequence[object | str]) -> RustQueueBuilder:
        """Plugin objects or modules, entry-point names or dotted module paths to register."""
        if isinstance(plugins, str):
            raise ConfigError("plugins() takes a list, e.g. plugins(['metrics'])")
        self._plugins.extend(plugins)
        return self

    def autoload_plugins(self, enabled: bool = False) -> RustQueueBuilder:
        """Opt into the CLI's rules: load installed plugins, honouring ``RUSTQUEUE_*`` variables."""
        self._autoload = bool(enabled)
        return self

    def host(self, host: PluginHost) -> RustQueueBuilder:
        """Use a prepared ``PluginHost`` (the CLI's) instead of building one."""
        self._host = host
        return self

    def clock(self, clock: Clock) -> RustQueueBuilder:
        self._clock = clock
        return self

    def worker_registry(self, registry: Any) -> RustQueueBuilder:
        self._worker_registry = registry
        return self

    # ------------------------------------------------------------------ build
    def engine_settings(self) -> EngineSettings:
        """The validated settings this builder describes."""
        changes = dict(self._changes)
        if self._retention:
            changes["retention"] = msgspec.structs.replace(self._settings.retention, **self._retention)
        if self._job_defaults:
            merged = {**msgspec.structs.asdict(self._settings.job_defaults), **self._job_defaults}
            changes["job_defaults"] = _convert(merged, JobDefaults, "job_defaults")
        if self._queues:
            queues = {q.name: q for q in self._settings.queues}
            for name, config in self._queues.items():
                queues[name] = _convert({**config, "name": name}, QueueConfig, f"queue {name!r}")
            changes["queues"] = tuple(queues.values())
        settings = msgspec.structs.replace(self._settings, **changes) if changes else self._settings
        return _convert(msgspec.to_builtins(settings), EngineSettings, "settings").validate()

    def create(self) -> RustQueue:
        """The engine, not started: plugins loaded, storage resolved and constructed (not opened)."""
        from rustqueue_core.engine import RustQueue
        from rustqueue_core.plugins import PluginHost

        settings = self.engine_settings()
        if self.scheme != "sqlite" and _SQLITE_ONLY_KEYS & set(self._query):
            raise ConfigError(f"durability() and hybrid() apply to sqlite storage, not {self.scheme}://")
        host = self._host or PluginHost.embedded(self._plugins, autoload=self._autoload)
        if self._host is not None:
            for plugin in self._plugins:
                host.load_name(plugin) if isinstance(plugin, str) else host.register(plugin)
        url = self.url
        spec = host.resolve_storage(url)
        host.check_pending()
        storage = spec.factory(url, dict(self._storage_options))
        engine = RustQueue(storage, settings=settings, host=host, clock=self._clock, storage_spec=spec)
        if self._worker_registry is not None:
            engine.worker_registry = self._worker_registry
        return engine

    def build(self) -> BuildHandle:
        """``await builder.build()`` → a started engine; ``async with builder.build() as rq`` closes it
        on exit. Settings are validated here, before anything opens. A server URL (``tcp://``,
        ``http://``, ``https://``) gives a remote engine with the same worker-facing methods."""
        if self.scheme in REMOTE_SCHEMES:
            from rustqueue_core.remote import open_remote

            return BuildHandle(open_remote(self.url, worker_registry=self._worker_registry))  # type: ignore[arg-type]
        return BuildHandle(self.create())

    def build_sync(self) -> SyncRustQueue:
        """A started ``SyncRustQueue`` running the engine on its own background loop."""
        from rustqueue_core.sync import SyncRustQueue

        return SyncRustQueue.from_builder(self)


#: Query keys that only ``durability()`` / ``hybrid()`` set, meaningful for SQLite alone.
_SQLITE_ONLY_KEYS = frozenset({"durability", "mode", "snapshot_interval", "max_dirty"})

#: Schemes served by a running rustqueue server rather than a storage plugin.
REMOTE_SCHEMES = frozenset({"tcp", "http", "https"})


class BuildHandle:
    """What ``build()`` returns: awaitable (→ started engine) and an async context manager."""

    __slots__ = ("_engine", "_started")

    def __init__(self, engine: RustQueue) -> None:
        self._engine = engine
        self._started = False

    @property
    def engine(self) -> RustQueue:
        """The engine, possibly not started yet."""
        return self._engine

    async def start(self) -> RustQueue:
        if not self._started:
            self._started = True
            try:
                engine: Any = self._engine
                if hasattr(engine, "enter_lifespans"):
                    await engine.start(lifespans=True)
                else:  # a remote engine has no plugins of its own
                    await engine.start()
            except BaseException:
                # Release what start() opened before it failed (storage files, connections).
                with contextlib.suppress(Exception):
                    await self._engine.close()
                raise
        return self._engine

    def __await__(self) -> Generator[Any, None, RustQueue]:
        return self.start().__await__()

    async def __aenter__(self) -> RustQueue:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self._engine.close()


def _convert(value: Mapping[str, Any], kind: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{what}: {exc}") from None
