"""PluginHost in process: hot-path flags, isolated event consumers, decisions, providers, storage."""

from __future__ import annotations

import logging
import types
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from rustqueue_core import hookimpl, plugin_discovery
from rustqueue_core.errors import AuthError, PluginError
from rustqueue_core.models import (
    ANONYMOUS,
    Capabilities,
    Credentials,
    HealthCheck,
    JobEvent,
    NewJob,
    Principal,
    StorageSpec,
    TransportSpec,
    WorkerInfo,
)
from rustqueue_core.plugin_discovery import PluginSelection, storage_plugin_name, storage_scheme
from rustqueue_core.plugins import PluginHost


def event(kind: str = "job.completed") -> JobEvent:
    return JobEvent(kind=kind, job_id="j1", queue="q", timestamp=datetime(2026, 1, 1, tzinfo=UTC))


class Recorder:
    def __init__(self) -> None:
        self.batches: list[Sequence[JobEvent]] = []

    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        self.batches.append(events)


class Exploding:
    @hookimpl
    def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
        raise RuntimeError("consumer bug")


def test_new_host_has_only_core_and_no_hot_path_hooks() -> None:
    host = PluginHost()
    assert host.plugin_names() == ["core"]
    assert host.has_before_push is False
    assert host.has_jobs_changed is False


def test_flags_follow_register_and_unregister() -> None:
    host = PluginHost()
    recorder = Recorder()
    host.register(recorder, "recorder")
    assert host.has_jobs_changed is True

    class Stamp:
        @hookimpl
        def rustqueue_before_push(self, jobs: Sequence[NewJob], principal: Principal | None) -> None:
            for job in jobs:
                job.options.metadata = {"stamped": True}

    host.register(Stamp(), "stamp")
    assert host.has_before_push is True
    jobs = [NewJob(queue="q", name="n")]
    host.before_push(jobs, None)
    assert jobs[0].options.metadata == {"stamped": True}
    host.unregister("stamp")
    host.unregister(recorder)
    assert (host.has_before_push, host.has_jobs_changed) == (False, False)


def test_hosts_are_independent() -> None:
    first, second = PluginHost(), PluginHost()
    first.register(Recorder(), "recorder")
    assert second.has_jobs_changed is False
    assert second.plugin_names() == ["core"]


def test_failing_consumer_does_not_starve_others(caplog: pytest.LogCaptureFixture) -> None:
    host = PluginHost()
    before, after = Recorder(), Recorder()
    host.register(before, "before")
    host.register(Exploding(), "exploding")
    host.register(after, "after")
    batch = [event()]
    with caplog.at_level(logging.ERROR, logger="rustqueue.plugins"):
        host.jobs_changed(batch)
        host.jobs_changed(batch)
    assert before.batches == [batch, batch]
    assert after.batches == [batch, batch]
    assert host.consumer_failures == {"exploding": 2}
    assert "exploding" in caplog.text and "consumer bug" in caplog.text


def test_consumer_may_take_no_arguments() -> None:
    calls = []
    module = types.ModuleType("counting")
    module.rustqueue_jobs_changed = hookimpl(lambda: calls.append(1))  # type: ignore[attr-defined]
    host = PluginHost()
    host.register(module, "counting")
    host.jobs_changed([event()])
    assert calls == [1]


def test_before_push_exception_rejects_the_batch() -> None:
    class Reject:
        @hookimpl
        def rustqueue_before_push(self, jobs: Sequence[NewJob]) -> None:
            raise ValueError("no pushes today")

    host = PluginHost()
    host.register(Reject(), "reject")
    with pytest.raises(ValueError, match="no pushes today"):
        host.before_push([NewJob(queue="q", name="n")], None)


def test_decisions_default_to_anonymous_allow() -> None:
    host = PluginHost()
    assert host.authenticate(Credentials(transport="http")) == ANONYMOUS
    assert host.authorize(ANONYMOUS, "push", "emails") is True


def test_decision_plugins_answer_before_core_and_may_abstain() -> None:
    class Tokens:
        @hookimpl
        def rustqueue_authenticate(self, credentials: Credentials) -> Principal | None:
            if credentials.token is None:
                return None  # abstain: core decides
            if credentials.token != "secret":
                raise AuthError("Invalid token")
            return Principal(name="svc")

        @hookimpl
        def rustqueue_authorize(self, principal: Principal, action: str, queue: str | None) -> bool | None:
            return False if action == "delete" else None

    host = PluginHost()
    host.register(Tokens(), "tokens")
    assert host.authenticate(Credentials(transport="tcp", token="secret")).name == "svc"
    assert host.authenticate(Credentials(transport="tcp")) == ANONYMOUS
    with pytest.raises(AuthError):
        host.authenticate(Credentials(transport="tcp", token="wrong"))
    assert host.authorize(ANONYMOUS, "delete", None) is False
    assert host.authorize(ANONYMOUS, "push", "q") is True


def test_health_isolates_a_raising_check() -> None:
    class Good:
        @hookimpl
        def rustqueue_health(self, engine: Any) -> list[HealthCheck]:
            return [HealthCheck(component="a"), HealthCheck(component="b", state="degraded")]

    class Bad:
        @hookimpl
        def rustqueue_health(self) -> HealthCheck:
            raise OSError("disk gone")

    host = PluginHost()
    host.register(Good(), "good")
    host.register(Bad(), "bad")
    checks = {c.component: c for c in host.health(engine=None)}  # type: ignore[arg-type]
    assert checks["a"].state == "ok" and checks["b"].state == "degraded"
    assert checks["bad"].state == "down" and checks["bad"].detail == "OSError: disk gone"


def _spec(name: str, *schemes: str) -> StorageSpec:
    return StorageSpec(
        name=name,
        schemes=schemes,
        description=name,
        capabilities=Capabilities(),
        factory=lambda url, options: None,
    )  # type: ignore[arg-type,return-value]


def test_transport_collision_names_both_plugins() -> None:
    def offer(plugin_name: str) -> object:
        class Offer:
            @hookimpl
            def rustqueue_transports(self) -> TransportSpec:
                return TransportSpec(
                    name="http",
                    default_bind="0.0.0.0:6790",
                    description=plugin_name,
                    factory=lambda engine, config: None,
                )

        return Offer()

    host = PluginHost()
    host.register(offer("one"), "one")
    assert [s.description for s in host.transports()] == ["one"]
    host.register(offer("two"), "two")
    with pytest.raises(PluginError, match=r"'one' and 'two'|'two' and 'one'"):
        host.transports()


def test_provider_returning_wrong_type_names_the_plugin() -> None:
    class Wrong:
        @hookimpl
        def rustqueue_storage_backends(self) -> Any:
            return {"name": "dict"}

    host = PluginHost()
    host.register(Wrong(), "wrong")
    with pytest.raises(PluginError, match="plugin 'wrong' returned dict from rustqueue_storage_backends"):
        host.storage_backends()


def test_worker_middleware_and_lifespans_are_collected_in_call_order() -> None:
    class First:
        @hookimpl
        def rustqueue_worker_middleware(self, queue: str, worker: WorkerInfo) -> Any:
            return f"mw-first-{queue}"

        @hookimpl
        def rustqueue_lifespan(self) -> str:
            return "ls-first"

    class Second:
        @hookimpl(tryfirst=True)
        def rustqueue_worker_middleware(self, queue: str) -> Any:
            return "mw-second"

    host = PluginHost()
    host.register(First(), "first")
    host.register(Second(), "second")
    info = WorkerInfo(queue="q", consumer_id="c", concurrency=1)
    assert host.worker_middleware("q", info) == ["mw-second", "mw-first-q"]
    assert host.lifespans(engine=None) == ["ls-first"]  # type: ignore[arg-type]


def test_resolve_storage_loads_builtin_entry_point_on_demand() -> None:
    host = PluginHost()
    spec = host.resolve_storage("memory://")
    assert spec.name == "memory" and "memory" in spec.schemes
    assert host.is_active("memory") and not host.is_active("sqlite")
    assert host.resolve_storage("sqlite:///x.db").name == "sqlite"


def test_resolve_storage_matches_driver_suffixed_schemes() -> None:
    host = PluginHost()
    host.register(types.SimpleNamespace(rustqueue_storage_backends=hookimpl(lambda: _spec("pg", "postgresql"))), "pg")
    assert host.resolve_storage("postgresql+asyncpg://u@h/db").name == "pg"


def test_resolve_storage_scheme_claimed_twice() -> None:
    host = PluginHost()
    for name in ("a", "b"):
        host.register(types.SimpleNamespace(rustqueue_storage_backends=hookimpl(lambda: _spec("x", "xs"))), name)
    with pytest.raises(PluginError, match="claimed by several plugins: a, b"):
        host.resolve_storage("xs://")


def test_missing_first_party_storage_gives_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = dict(plugin_discovery.installed_plugins())
    installed.pop("postgres", None)
    monkeypatch.setattr(plugin_discovery, "_installed", installed)
    host = PluginHost()
    with pytest.raises(PluginError) as info:
        host.resolve_storage("postgresql://user@localhost:5432/db")
    assert str(info.value) == (
        "no storage plugin handles 'postgresql://'.\n       Install it with: pip install 'rustqueue[postgres]'"
    )
    rows = {row.name: row for row in host.describe(available=True)}
    assert rows["postgres"].status == "not installed"
    assert rows["postgres"].install == "pip install 'rustqueue[postgres]'"


def test_storage_scheme_helpers() -> None:
    assert storage_scheme("PostgreSQL+asyncpg://u@h/db") == "postgresql+asyncpg"
    assert storage_plugin_name("postgresql+asyncpg") == "postgres"
    assert storage_plugin_name("sqlite") == "sqlite"
    assert storage_plugin_name("duckdb") == "duckdb"
    with pytest.raises(Exception, match="has no scheme"):
        storage_scheme("jobs.db")


def test_plugin_owned_hooks_through_addhooks_and_check_pending() -> None:
    specs = types.ModuleType("owned_specs")
    from rustqueue_core.hookspecs import hookspec

    def rustqueue_widget_routes(app_config: Any) -> Any:
        """A plugin-owned hook."""

    specs.rustqueue_widget_routes = hookspec(rustqueue_widget_routes)  # type: ignore[attr-defined]

    class Owner:
        @hookimpl
        def rustqueue_addhooks(self, host: PluginHost) -> None:
            host.add_hookspecs(specs)

    class Contributor:
        @hookimpl
        def rustqueue_widget_routes(self, app_config: Any) -> str:
            return "route"

    class Optional:
        @hookimpl(optionalhook=True)
        def rustqueue_other_routes(self) -> str:
            return "never"

    host = PluginHost()
    host.register(Contributor(), "contributor")  # before the owner: verified when the spec arrives
    host.register(Optional(), "optional")
    with pytest.raises(PluginError, match="contributor"):
        host.check_pending()
    host.register(Owner(), "owner")
    host.check_pending()
    assert host.hook.rustqueue_widget_routes(app_config=None) == ["route"]


def test_embedded_host_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUSTQUEUE_PLUGINS", "hello")
    host = PluginHost.embedded([Recorder()])
    assert "hello" not in host.plugin_names()
    assert host.has_jobs_changed
    autoloaded = PluginHost.embedded(autoload=True)
    assert "hello" in autoloaded.plugin_names() and "sqlite" not in autoloaded.plugin_names()


def test_embedded_plugins_by_name_and_blocked_names() -> None:
    host = PluginHost.embedded(["hello"])
    assert host.is_active("hello")
    with pytest.raises(PluginError, match="unknown plugin 'nope'"):
        PluginHost.embedded(["nope"])


def test_selection_precedence_and_conflicts() -> None:
    sel = PluginSelection.from_sources(
        plugins_flag="a,b",
        p_flags=["no:c", "d"],
        no_plugin_flags=["e"],
        environ={"RUSTQUEUE_PLUGINS": "x", "RUSTQUEUE_NO_PLUGINS": "f"},
        table={"only": ["y"], "disable": ["g"]},
    )
    assert sel.only == ["a", "b"] and sel.only_source == "--plugins"
    assert sel.blocked == {
        "c": "-p no:c",
        "e": "--no-plugin=e",
        "f": "RUSTQUEUE_NO_PLUGINS",
        "g": "rustqueue.toml [plugins] disable",
    }
    assert sel.names_to_load(["a", "z"]) == ["a", "b", "d"]
    sel.check()
    env_only = PluginSelection.from_sources(environ={"RUSTQUEUE_PLUGINS": ""}, table={"only": ["y"]})
    assert env_only.only == []
    assert PluginSelection.from_sources(table={"only": ["y"]}).only == ["y"]
    auto = PluginSelection.from_sources(environ={"RUSTQUEUE_DISABLE_PLUGIN_AUTOLOAD": "1"}, p_flags=["k"])
    assert auto.names_to_load(["a", "b"]) == ["k"]
    with pytest.raises(PluginError, match="both selected"):
        PluginSelection.from_sources(plugins_flag="a", environ={"RUSTQUEUE_NO_PLUGINS": "a"}).check()
    with pytest.raises(Exception, match="unknown keys"):
        PluginSelection.from_sources(table={"enable": ["a"]})


def test_describe_includes_not_selected_and_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    host = PluginHost()
    host.load(PluginSelection.from_sources(plugins_flag="hello", p_flags=["no:tcp"]))
    rows = {row.name: row for row in host.describe()}
    assert rows["hello"].status == "active"
    assert rows["tcp"].status == "blocked (-p no:tcp)"
    assert rows["http"].status == "not selected"
    assert rows["http"].kind == "transport"


def test_recording_sees_relay_calls_and_jobs_changed() -> None:
    host = PluginHost()
    host.register(Recorder(), "recorder")
    batch = [event()]
    with host.recording() as calls:
        host.authorize(ANONYMOUS, "push", "q")
        host.jobs_changed(batch)
    host.authorize(ANONYMOUS, "push", "q")  # after the block: not recorded
    assert [c.name for c in calls] == ["rustqueue_authorize", "rustqueue_jobs_changed"]
    assert calls[0].kwargs == {"principal": ANONYMOUS, "action": "push", "queue": "q"}
    assert calls[1].kwargs["events"] is batch


def test_trace_logs_hook_calls(caplog: pytest.LogCaptureFixture) -> None:
    host = PluginHost(trace=True)
    host.register(Recorder(), "recorder")
    with caplog.at_level(logging.DEBUG, logger="rustqueue.plugins"):
        host.authorize(ANONYMOUS, "push", "q")
        host.jobs_changed([event()])
    assert "hook rustqueue_authorize -> ['core']" in caplog.text
    assert "hook rustqueue_jobs_changed -> recorder (1 events)" in caplog.text


def test_plugin_failing_at_registration_leaves_nothing_behind() -> None:
    class Broken:
        @hookimpl
        def rustqueue_addhooks(self, host: PluginHost) -> None:
            raise RuntimeError("cannot add hooks")

        @hookimpl
        def rustqueue_jobs_changed(self, events: Sequence[JobEvent]) -> None:
            pass

    host = PluginHost()
    with pytest.raises(RuntimeError, match="cannot add hooks"):
        host.register(Broken(), "broken")
    assert host.pm.get_plugin("broken") is None
    assert host.plugin_names() == ["core"] and host.has_jobs_changed is False


def test_same_module_by_entry_point_and_module_path_registers_once() -> None:
    host = PluginHost.embedded(["hello", "rustqueue_plugin_hello"])
    assert host.plugin_names() == ["core", "hello"]
    assert host.distribution_label("hello") == "rustqueue-plugin-hello 0.1.0"


def test_blocked_names_are_not_registered_and_core_stays() -> None:
    host = PluginHost()
    host.load(PluginSelection.from_sources(p_flags=["no:hello"], plugins_flag=""))
    with pytest.raises(PluginError, match=r"plugin 'hello' is blocked \(-p no:hello\)"):
        host.load_name("hello")
    with pytest.raises(PluginError, match="core plugin cannot be unregistered"):
        host.unregister("core")
    host.unregister("not-there")  # ignored
