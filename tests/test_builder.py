"""RustQueueBuilder (SEMANTICS.md §7.1): settings, validation at build, plugins, build forms."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from rustqueue_core import ConfigError, JobEvent, RustQueue, hookimpl
from rustqueue_core.builder import RustQueueBuilder
from rustqueue_core.clock import ManualClock
from rustqueue_core.errors import PluginError
from rustqueue_core.settings import EngineSettings


def test_defaults_match_the_spec() -> None:
    settings = RustQueueBuilder("memory://").engine_settings()
    assert settings == EngineSettings()
    assert (settings.stall_timeout_ms, settings.tick_interval_ms, settings.max_dag_depth) == (
        30_000,
        1_000,
        10,
    )


def test_setters_land_in_engine_settings() -> None:
    builder = (
        RustQueueBuilder("memory://")
        .stall_timeout(45)
        .tick_interval(timedelta(milliseconds=250))
        .retention(completed="1d", dlq=3600, cancelled="off")
        .max_dag_depth(3)
        .queue("emails", lease_ms=60_000, group_concurrency=2)
        .rate_limit("emails", 10, burst=20)
        .job_defaults(max_attempts=5, timeout_ms=1000)
        .memory_limit(512, threshold=0.9)
        .housekeeping(False)
    )
    settings = builder.engine_settings()
    assert settings.stall_timeout_ms == 45_000
    assert settings.tick_interval_ms == 250
    assert settings.retention.completed_ttl_ms == 86_400_000
    assert settings.retention.dlq_ttl_ms == 3_600_000
    assert settings.retention.cancelled_ttl_ms is None
    assert settings.max_dag_depth == 3
    (emails,) = settings.queues
    assert (emails.name, emails.lease_ms, emails.group_concurrency) == ("emails", 60_000, 2)
    assert (emails.rate_limit_per_second, emails.rate_limit_burst) == (10.0, 20)
    assert (settings.job_defaults.max_attempts, settings.job_defaults.timeout_ms) == (5, 1000)
    assert (settings.memory_limit_mb, settings.memory_pressure_threshold) == (512, 0.9)
    assert settings.housekeeping is False


@pytest.mark.parametrize(
    "configure",
    [
        lambda b: b.tick_interval(0),
        lambda b: b.stall_timeout(-1),
        lambda b: b.stall_timeout("30s"),
        lambda b: b.retention(completed="a week"),
        lambda b: b.max_dag_depth(0),
        lambda b: b.queue("q", colour="blue"),
        lambda b: b.rate_limit("q", 0),
        lambda b: b.rate_limit("q", 5, burst=0),
        lambda b: b.job_defaults(retries=3),
        lambda b: b.durability("paranoid"),
        lambda b: b.hybrid(snapshot_interval=0),
        lambda b: b.plugins("metrics"),
    ],
)
def test_bad_settings_fail_in_the_setter(configure: object) -> None:
    with pytest.raises(ConfigError):
        configure(RustQueueBuilder("memory://"))  # type: ignore[operator]


@pytest.mark.parametrize(
    "configure",
    [
        lambda b: b.queue("q", lease_ms="long"),
        lambda b: b.job_defaults(max_attempts="many"),
        lambda b: b.memory_limit(-5),
        lambda b: b.memory_limit(100, threshold=2),
        lambda b: b.durability("full"),  # memory storage has no durability setting
    ],
)
def test_bad_settings_fail_at_build_before_anything_opens(configure: object) -> None:
    builder = configure(RustQueueBuilder("memory://"))  # type: ignore[operator]
    with pytest.raises(ConfigError):
        builder.build()


def test_storage_url_options() -> None:
    assert RustQueue.sqlite("jobs.db").url == "sqlite:///jobs.db"
    assert RustQueue.sqlite(Path("/srv/jobs.db")).url == "sqlite:////srv/jobs.db"
    builder = RustQueueBuilder("sqlite:///jobs.db?durability=normal").durability("full").hybrid(0.5, 100)
    assert builder.url == "sqlite:///jobs.db?durability=full&mode=hybrid&snapshot_interval=0.5&max_dirty=100"
    with pytest.raises(ConfigError, match="no scheme"):
        RustQueueBuilder("jobs.db")


def test_unknown_storage_scheme_fails_at_build() -> None:
    with pytest.raises(PluginError, match="no storage plugin handles 'nosuch://'"):
        RustQueueBuilder("nosuch://x").build()


class Recorder:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        self.events.extend(events)


def test_embedding_registers_only_core_storage_and_given_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUSTQUEUE_PLUGINS", "hello,tcp")
    recorder = Recorder()
    handle = RustQueue.memory().plugins([recorder, "hello"]).build()
    host = handle.engine.host
    assert host is not None
    assert sorted(host.plugin_names()) == sorted(["core", "memory", "hello", host.pm.get_name(recorder)])
    assert host.has_jobs_changed


def test_autoload_opts_into_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUSTQUEUE_PLUGINS", "hello")
    host = RustQueue.memory().autoload_plugins(True).build().engine.host
    assert host is not None and host.is_active("hello") and not host.is_active("tcp")


async def test_build_awaits_to_a_started_engine_and_closes() -> None:
    rq = await RustQueue.memory().housekeeping(False).build()
    try:
        assert rq.state == "ready"
        job_id = await rq.push("q", "n", {"a": 1})
        assert (await rq.get_job(job_id)) is not None
    finally:
        await rq.close()
    assert rq.state == "closed"


async def test_build_as_async_context_manager(tmp_path: Path) -> None:
    recorder = Recorder()
    clock = ManualClock()
    async with RustQueue.sqlite(tmp_path / "jobs.db").clock(clock).plugins([recorder]).build() as rq:
        assert rq.state == "ready"
        assert rq.clock is clock
        await rq.push("q", "n")
        for _ in range(100):
            if recorder.events:
                break
            await asyncio.sleep(0.01)
        assert recorder.events and recorder.events[0].queue == "q"
    assert rq.state == "closed"
    assert (tmp_path / "jobs.db").exists()


async def test_build_start_form() -> None:
    rq = await RustQueue.memory().build().start()
    try:
        assert rq.state == "ready"
    finally:
        await rq.close()


def test_build_sync_gives_a_working_sync_facade(tmp_path: Path) -> None:
    rq = RustQueue.sqlite(tmp_path / "sync.db").build_sync()
    try:
        job_id = rq.push("q", "n", {"x": 1})
        assert rq.get_job(job_id).data == {"x": 1}
    finally:
        rq.close()


async def test_failed_start_releases_the_engine(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    handle = RustQueue.sqlite(blocker / "jobs.db").build()
    with pytest.raises(Exception):  # noqa: B017 - whatever the backend raises for an unusable path
        await handle
    assert handle.engine.state == "closed"


def test_query_options_of_other_backends_pass_through() -> None:
    """Only the SQLite-only keys are refused for other schemes; a backend's own options reach it."""
    from rustqueue_core.builder import RustQueueBuilder
    from rustqueue_core.errors import ConfigError

    engine = RustQueueBuilder("memory://?flavour=plain").create()
    assert engine.state == "starting"
    import pytest

    with pytest.raises(ConfigError, match="apply to sqlite"):
        RustQueueBuilder("memory://").durability("full").create()
