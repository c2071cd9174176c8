"""Plugin loading through the real ``rustqueue`` command, in subprocesses.

Third-party plugins are the installed ``examples/plugin-hello`` and small distributions written to a
temporary site directory (a ``.dist-info`` with ``entry_points.txt`` on ``PYTHONPATH``), so broken,
colliding and misspelled plugins are real entry points, found the way pip-installed ones are.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from rustqueue_core.signals import REPEAT_WINDOW_S

SCRIPT = Path(sys.executable).with_name("rustqueue")
TIMEOUT = 60


def cli_env(extra: dict[str, str] | None = None, site: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUSTQUEUE_")}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    env.update(extra or {})
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, site: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=cli_env(env, site),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def plugin_rows(*args: str, cwd: Path, env: dict[str, str] | None = None, site: Path | None = None) -> dict[str, Any]:
    result = run_cli("plugins", "--json", *args, cwd=cwd, env=env, site=site)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def add_distribution(
    site: Path, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """Write an installed-looking distribution: metadata, entry points and its modules."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[rustqueue]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


# --------------------------------------------------------------------------- listing and selection


def test_autoload_lists_builtins_and_third_party_with_distributions(workdir: Path) -> None:
    rows = plugin_rows(cwd=workdir)
    assert rows["core"]["status"] == "active"
    assert rows["core"]["hooks"] == ["rustqueue_authenticate", "rustqueue_authorize"]
    for name in ("memory", "sqlite"):
        assert rows[name]["status"] == "active"
        assert rows[name]["kind"] == "storage"
        assert (rows[name]["distribution"], rows[name]["version"]) == ("rustqueue", "0.1.0")
    assert rows["sqlite"]["schemes"] == ["sqlite"]
    assert rows["sqlite"]["capabilities"]["durable"] is True
    hello = rows["hello"]
    assert (hello["distribution"], hello["version"], hello["status"]) == (
        "rustqueue-plugin-hello",
        "0.1.0",
        "active",
    )
    assert "rustqueue_jobs_changed" in hello["hooks"]


def test_plugins_flag_loads_exactly_those_and_storage_on_demand(workdir: Path) -> None:
    rows = plugin_rows("--plugins=hello", "--storage", "memory://", cwd=workdir)
    assert rows["hello"]["status"] == "active"
    assert rows["memory"]["status"] == "active"  # loaded for the URL's scheme
    assert rows["sqlite"]["status"] == "not selected"
    assert rows["http"]["status"] == "not selected"


def test_empty_rustqueue_plugins_means_none(workdir: Path) -> None:
    rows = plugin_rows("--storage", "memory://", cwd=workdir, env={"RUSTQUEUE_PLUGINS": ""})
    active = sorted(name for name, row in rows.items() if row["status"] == "active")
    assert active == ["core", "memory"]


def test_rustqueue_plugins_env_selects(workdir: Path) -> None:
    rows = plugin_rows(cwd=workdir, env={"RUSTQUEUE_PLUGINS": "hello"})
    assert rows["hello"]["status"] == "active"
    assert rows["tcp"]["status"] == "not selected"


def test_command_line_beats_environment_beats_config_file(workdir: Path) -> None:
    (workdir / "rustqueue.toml").write_text('[plugins]\nonly = ["hello"]\n')
    assert plugin_rows(cwd=workdir)["hello"]["status"] == "active"
    rows = plugin_rows(cwd=workdir, env={"RUSTQUEUE_PLUGINS": "tcp"})
    assert (rows["hello"]["status"], rows["tcp"]["status"]) == ("not selected", "active")
    rows = plugin_rows("--plugins=memory", cwd=workdir, env={"RUSTQUEUE_PLUGINS": "tcp"})
    assert (rows["hello"]["status"], rows["tcp"]["status"]) == ("not selected", "not selected")


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        (["-p", "no:hello"], {}, "-p no:hello"),
        (["--no-plugin=hello"], {}, "--no-plugin=hello"),
        ([], {"RUSTQUEUE_NO_PLUGINS": "tcp,hello"}, "RUSTQUEUE_NO_PLUGINS"),
    ],
)
def test_blocking_sources(workdir: Path, args: list[str], env: dict[str, str], source: str) -> None:
    rows = plugin_rows(*args, cwd=workdir, env=env)
    assert rows["hello"]["status"] == f"blocked ({source})"
    assert rows["hello"]["hooks"] == []  # never imported
    assert rows["memory"]["status"] == "active"


def test_config_file_disable_blocks(workdir: Path) -> None:
    (workdir / "rustqueue.toml").write_text('[plugins]\ndisable = ["hello"]\n')
    assert plugin_rows(cwd=workdir)["hello"]["status"].startswith("blocked (")


def test_autoload_disabled_by_environment_then_p_adds(workdir: Path) -> None:
    env = {"RUSTQUEUE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    rows = plugin_rows("-p", "hello", "--storage", "memory://", cwd=workdir, env=env)
    active = sorted(name for name, row in rows.items() if row["status"] == "active")
    assert active == ["core", "hello", "memory"]


def test_p_accepts_a_dotted_module_path(workdir: Path, site: Path) -> None:
    (site / "myapp").mkdir()
    (site / "myapp" / "__init__.py").write_text("")
    (site / "myapp" / "rq_hooks.py").write_text(
        "from rustqueue_core import hookimpl\n\n@hookimpl\ndef rustqueue_jobs_changed(events):\n    pass\n"
    )
    rows = plugin_rows("--plugins=", "-p", "myapp.rq_hooks", "--storage", "memory://", cwd=workdir, site=site)
    assert rows["myapp.rq_hooks"]["status"] == "active"
    assert rows["myapp.rq_hooks"]["hooks"] == ["rustqueue_jobs_changed"]
    assert rows["myapp.rq_hooks"]["kind"] == "events"


def test_hook_filter(workdir: Path) -> None:
    rows = plugin_rows("--hook", "jobs_changed", cwd=workdir)
    assert "hello" in rows
    assert "core" not in rows
    assert all("rustqueue_jobs_changed" in row["hooks"] for row in rows.values())


def test_plain_table_when_piped(workdir: Path) -> None:
    result = run_cli("plugins", "--plugins=hello", cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "kind", "distribution", "version"]
    hello = next(line for line in lines if line.startswith("hello "))
    assert "rustqueue-plugin-hello" in hello and "active" in hello


# --------------------------------------------------------------------------- errors


def test_unknown_name_lists_installed_plugins(workdir: Path) -> None:
    result = run_cli("serve", "--plugins=nope", "--storage", "memory://", cwd=workdir)
    assert result.returncode == 1
    assert "unknown plugin 'nope'" in result.stderr
    installed = result.stderr.split("Installed plugins:")[1]
    assert "hello" in installed and "sqlite" in installed and "memory" in installed


def test_name_both_selected_and_blocked(workdir: Path) -> None:
    result = run_cli("serve", "--plugins=hello", "-p", "no:hello", "--storage", "memory://", cwd=workdir)
    assert result.returncode == 1
    assert "'hello' is both selected (--plugins) and blocked (-p no:hello)" in result.stderr


def test_core_cannot_be_blocked(workdir: Path) -> None:
    result = run_cli("serve", "-p", "no:core", "--storage", "memory://", cwd=workdir)
    assert result.returncode == 1
    assert "essential" in result.stderr


BROKEN = {"broken_plugin": "raise RuntimeError('boom at import')\n"}


def test_failing_import_names_plugin_distribution_and_way_out(workdir: Path, site: Path) -> None:
    add_distribution(site, "rustqueue-broken", "2.3.4", {"broken": "broken_plugin"}, BROKEN)
    result = run_cli("serve", "--plugins=broken", "--storage", "memory://", cwd=workdir, site=site)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "plugin 'broken' (rustqueue-broken 2.3.4) failed to load" in message
    assert "RuntimeError: boom at import" in message
    assert "--no-plugin=broken" in message


def test_listing_never_fails_and_shows_the_failure(workdir: Path, site: Path) -> None:
    add_distribution(site, "rustqueue-broken", "2.3.4", {"broken": "broken_plugin"}, BROKEN)
    rows = plugin_rows(cwd=workdir, site=site)
    assert rows["broken"]["status"] == "failed: RuntimeError: boom at import"
    assert (rows["broken"]["distribution"], rows["broken"]["version"]) == ("rustqueue-broken", "2.3.4")
    assert rows["hello"]["status"] == "active"
    # The way out the message names works.
    rows = plugin_rows("--no-plugin=broken", cwd=workdir, site=site)
    assert rows["broken"]["status"] == "blocked (--no-plugin=broken)"


def test_two_distributions_offering_one_name(workdir: Path, site: Path) -> None:
    module = {"twin_a": "", "twin_b": ""}
    add_distribution(site, "rustqueue-twin-a", "1.0", {"twin": "twin_a"}, {"twin_a": module["twin_a"]})
    add_distribution(site, "rustqueue-twin-b", "2.0", {"twin": "twin_b"}, {"twin_b": module["twin_b"]})
    result = run_cli("serve", "--plugins=twin", "--storage", "memory://", cwd=workdir, site=site)
    assert result.returncode == 1
    assert "rustqueue-twin-a 1.0" in result.stderr and "rustqueue-twin-b 2.0" in result.stderr


def test_misspelled_hook_fails_at_check_pending(workdir: Path, site: Path) -> None:
    add_distribution(
        site,
        "rustqueue-typo",
        "0.3",
        {"typo": "typo_plugin"},
        {
            "typo_plugin": "from rustqueue_core import hookimpl\n\n"
            "@hookimpl\ndef rustqueue_jobs_changd(events):\n    pass\n"
        },
    )
    result = run_cli("serve", "--plugins=typo", "--storage", "memory://", cwd=workdir, site=site)
    assert result.returncode == 1
    assert "rustqueue_jobs_changd" in result.stderr
    assert "--no-plugin=typo" in result.stderr


HIDE_ENTRY_POINTS = """
import importlib.metadata as metadata

_entry_points = metadata.entry_points
HIDDEN = {hidden!r}


def entry_points(**params):
    found = _entry_points(**params)
    if params.get("group") == "rustqueue":
        return metadata.EntryPoints(ep for ep in found if ep.name not in HIDDEN)
    return found


metadata.entry_points = entry_points
"""


def hide_plugins(site: Path, *names: str) -> None:
    """Make the subprocess see an environment where these plugins are not installed."""
    (site / "sitecustomize.py").write_text(HIDE_ENTRY_POINTS.format(hidden=set(names)))


def test_missing_storage_plugin_names_the_extra_to_install(workdir: Path, site: Path) -> None:
    hide_plugins(site, "postgres")
    result = run_cli("serve", "--storage", "postgresql+asyncpg://u@localhost/db", cwd=workdir, site=site)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-2:] == [
        "error: no storage plugin handles 'postgresql+asyncpg://'.",
        "       Install it with: pip install 'rustqueue[postgres]'",
    ]
    rows = plugin_rows("--available", cwd=workdir, site=site)
    assert rows["postgres"]["status"] == "not installed"
    assert rows["postgres"]["install"] == "pip install 'rustqueue[postgres]'"
    assert rows["sqlite"]["status"] == "active"


def test_unclaimed_scheme_lists_available_ones(workdir: Path) -> None:
    result = run_cli("serve", "--plugins=memory,sqlite", "--storage", "redis://localhost", cwd=workdir)
    assert result.returncode == 1
    assert "no storage plugin handles 'redis://'" in result.stderr
    assert "Schemes available: memory://, sqlite://" in result.stderr


def test_blocked_storage_plugin_is_named(workdir: Path) -> None:
    result = run_cli("serve", "-p", "no:postgres", "--plugins=", "--storage", "postgresql://u@h/db", cwd=workdir)
    assert result.returncode == 1
    assert "storage plugin 'postgres'" in result.stderr and "blocked (-p no:postgres)" in result.stderr


# --------------------------------------------------------------------------- plugin options, commands

GREETER = """
from rustqueue_core import hookimpl

@hookimpl
def rustqueue_add_options(options):
    options.add(key="greeter.greeting", flag="--greeting", env="GREETER_GREETING", default="hello",
                help="what to say")

@hookimpl
def rustqueue_add_commands(commands):
    def run(args, host):
        print("greeting=" + str(host.config.get("greeter.greeting")) + " name=" + args.who)
        return 0
    commands.add("greet", "print the greeting", lambda parser: parser.add_argument("who"), run)
"""


def test_plugin_options_and_commands(workdir: Path, site: Path) -> None:
    add_distribution(site, "rustqueue-greeter", "1.2", {"greeter": "greeter_plugin"}, {"greeter_plugin": GREETER})
    help_text = run_cli("serve", "--help", "--plugins=greeter", cwd=workdir, site=site).stdout
    assert "--greeting" in help_text and "GREETER_GREETING" in help_text and "greeter.greeting" in help_text

    result = run_cli("greet", "ann", "--plugins=greeter", "--storage", "memory://", cwd=workdir, site=site)
    assert (result.returncode, result.stdout.strip()) == (0, "greeting=hello name=ann"), result.stderr
    (workdir / "rustqueue.toml").write_text('[greeter]\ngreeting = "from the file"\n')
    result = run_cli("greet", "bo", "--plugins=greeter", "--storage", "memory://", cwd=workdir, site=site)
    assert result.stdout.strip() == "greeting=from the file name=bo", result.stderr
    env = {"GREETER_GREETING": "from env"}
    result = run_cli("greet", "cy", "--plugins=greeter", "--storage", "memory://", cwd=workdir, site=site, env=env)
    assert result.stdout.strip() == "greeting=from env name=cy", result.stderr


# --------------------------------------------------------------------------- serve

LIFESPAN_AND_TRANSPORT = """
import contextlib, os
from rustqueue_core import TransportSpec, hookimpl

LOG = os.environ["LIFECYCLE_LOG"]

def note(text):
    with open(LOG, "a") as f:
        f.write(text + "\\n")

@contextlib.asynccontextmanager
async def lifespan():
    note("lifespan enter")
    yield
    note("lifespan exit")

@hookimpl
def rustqueue_lifespan(engine):
    return lifespan()

@contextlib.asynccontextmanager
async def listen(engine, config):
    note("transport enter port=%s" % config.get("server.http_port"))
    yield "127.0.0.1:%s" % config.get("server.http_port")
    note("transport exit")

@hookimpl
def rustqueue_transports():
    return TransportSpec(name="fake", default_bind="0.0.0.0:1", description="test transport", factory=listen)
"""

FAILING_LIFESPAN = """
import contextlib
from rustqueue_core import hookimpl

@contextlib.asynccontextmanager
async def lifespan():
    raise ConnectionError("outbox unreachable")
    yield

@hookimpl
def rustqueue_lifespan(engine):
    return lifespan()
"""


def start_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None, site: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), "serve", *args],
        cwd=cwd,
        env=cli_env(env, site),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("rustqueue ready") or proc.poll() is not None:
            break
    if not line.startswith("rustqueue ready"):
        proc.kill()
        _, err = proc.communicate(timeout=TIMEOUT)
        raise AssertionError(f"server did not become ready: {line!r}\n{err}")
    return line


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_without_transport_runs_engine_and_hints(workdir: Path, sig: int) -> None:
    proc = start_serve("--plugins=hello", "--storage", "memory://", cwd=workdir)
    line = wait_ready(proc)
    assert "no transport installed" in line and "pip install 'rustqueue[server]'" in line
    code, err = stop(proc, sig)
    assert code == 0, err
    line = next(line for line in err.splitlines() if "plugin hello (rustqueue-plugin-hello 0.1.0): " in line)
    assert "jobs_changed" in line


def test_serve_default_storage_is_sqlite_under_data(workdir: Path) -> None:
    proc = start_serve("--plugins=", cwd=workdir)
    line = wait_ready(proc)
    assert "sqlite:///data/rustqueue.db" in line
    code, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert (workdir / "data" / "rustqueue.db").is_file()


def test_serve_enters_and_exits_in_reverse(workdir: Path, site: Path) -> None:
    add_distribution(site, "rustqueue-fake", "0.9", {"fake": "fake_plugin"}, {"fake_plugin": LIFESPAN_AND_TRANSPORT})
    log = workdir / "lifecycle.log"
    env = {"LIFECYCLE_LOG": str(log), "RUSTQUEUE_HTTP_PORT": "7123"}
    proc = start_serve(
        "--plugins=fake", "--storage", "memory://", "--host", "127.0.0.1", cwd=workdir, site=site, env=env
    )
    line = wait_ready(proc)
    assert line.startswith("rustqueue ready: fake on 127.0.0.1:7123")
    code, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "without authentication" not in err  # loopback only
    # Transports listen during recovery (the startup gate); lifespans start before the engine is ready
    # and stop after the transports stopped accepting.
    assert log.read_text().splitlines() == [
        "transport enter port=7123",
        "lifespan enter",
        "transport exit",
        "lifespan exit",
    ]


SLOW_EXIT_LIFESPAN = """
import asyncio, contextlib, os
from rustqueue_core import hookimpl

LOG = os.environ["LIFECYCLE_LOG"]

@contextlib.asynccontextmanager
async def lifespan():
    yield
    await asyncio.sleep(float(os.environ["EXIT_SECONDS"]))  # a drain that takes a while
    with open(LOG, "a") as f:
        f.write("lifespan exit\\n")

@hookimpl
def rustqueue_lifespan(engine):
    return lifespan()
"""


@pytest.mark.parametrize(
    ("gap", "code", "drained"),
    [
        (0.05, 0, True),  # a launcher's copy of the first signal: one request, drained in full
        (REPEAT_WINDOW_S + 0.4, 130, False),  # a deliberate second signal: exit without draining
    ],
)
def test_serve_takes_a_quick_repeat_of_its_signal_as_the_same_request(
    workdir: Path, site: Path, gap: float, code: int, drained: bool
) -> None:
    add_distribution(site, "rustqueue-slow", "1.0", {"slow": "slow_plugin"}, {"slow_plugin": SLOW_EXIT_LIFESPAN})
    log = workdir / "lifecycle.log"
    env = {"LIFECYCLE_LOG": str(log), "EXIT_SECONDS": "2.5"}
    proc = start_serve("--plugins=slow", "--storage", "memory://", cwd=workdir, site=site, env=env)
    wait_ready(proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    returncode, err = stop(proc, signal.SIGINT)
    assert returncode == code, err
    assert (log.is_file() and "lifespan exit" in log.read_text()) is drained
    assert ("taken as the same request" in err) is drained
    assert ("exiting without draining" in err) is not drained


def test_serve_flag_beats_environment_for_ports(workdir: Path, site: Path) -> None:
    add_distribution(site, "rustqueue-fake", "0.9", {"fake": "fake_plugin"}, {"fake_plugin": LIFESPAN_AND_TRANSPORT})
    env = {"LIFECYCLE_LOG": str(workdir / "log"), "RUSTQUEUE_HTTP_PORT": "7123"}
    proc = start_serve(
        "--plugins=fake", "--storage", "memory://", "--http-port", "7555", cwd=workdir, site=site, env=env
    )
    assert "127.0.0.1:7555" in wait_ready(proc)
    code, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    # The default bind address is every interface, and no auth plugin is configured.
    assert "serving on 0.0.0.0 without authentication" in err


def test_failing_lifespan_stops_serve_with_one_message(workdir: Path, site: Path) -> None:
    add_distribution(site, "rustqueue-outbox", "3.1", {"outbox": "outbox_plugin"}, {"outbox_plugin": FAILING_LIFESPAN})
    result = run_cli("serve", "--plugins=outbox", "--storage", "memory://", cwd=workdir, site=site)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "plugin 'outbox' (rustqueue-outbox 3.1) failed to start" in message
    assert "ConnectionError: outbox unreachable" in message
    assert "--no-plugin=outbox" in message


def test_trace_plugins_logs_hook_calls(workdir: Path) -> None:
    result = run_cli("plugins", "--plugins=hello", cwd=workdir, env={"RUSTQUEUE_TRACE_PLUGINS": "1"})
    assert result.returncode == 0
    assert "DEBUG rustqueue.plugins: hook rustqueue_storage_backends -> sqlite" in result.stderr
    quiet = run_cli("plugins", "--plugins=hello", cwd=workdir)
    assert "hook rustqueue_" not in quiet.stderr


def test_explicit_config_file_and_usage(workdir: Path) -> None:
    (workdir / "other.toml").write_text('[plugins]\nonly = ["hello"]\n')
    rows = plugin_rows("-c", "other.toml", "--storage", "memory://", cwd=workdir)
    active = sorted(name for name, row in rows.items() if row["status"] == "active")
    assert active == ["core", "hello", "memory"]
    (workdir / "bad.toml").write_text("[plugins\n")
    bad = run_cli("serve", "--config", "bad.toml", cwd=workdir)
    assert bad.returncode == 2 and "invalid TOML in bad.toml" in bad.stderr
    version = run_cli("--version", cwd=workdir)
    assert (version.returncode, version.stdout.strip()) == (0, "rustqueue 0.1.0")
    bare = run_cli(cwd=workdir)
    assert bare.returncode == 2 and "Background jobs without infrastructure" in bare.stdout


def test_blocking_a_name_that_matches_nothing_warns(workdir: Path) -> None:
    result = run_cli("plugins", "-p", "no:hellp", "--plugins=hello", cwd=workdir)
    assert result.returncode == 0
    assert "blocked plugin 'hellp' (-p no:hellp) matches no installed plugin" in result.stderr
