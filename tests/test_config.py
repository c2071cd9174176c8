"""Config: TOML file keys of the original, environment, flags, option registry, engine settings."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import pytest

from rustqueue_core.config import (
    DEFAULT_STORAGE_URL,
    CommandRegistry,
    Config,
    OptionRegistry,
    engine_settings_from_config,
    sqlite_file_from_url,
    storage_url_from_config,
)
from rustqueue_core.errors import ConfigError

ORIGINAL_TOML = """
[server]
host = "127.0.0.1"
http_port = 7000
tcp_port = 7001

[storage]
backend = "sqlite"
path = "/var/lib/rustqueue"

[scheduler]
tick_interval_ms = 250
stall_check_interval_ms = 2000

[jobs]
default_max_attempts = 5
default_backoff = "linear"
default_backoff_delay_ms = 200
default_timeout_ms = 60000
stall_timeout_ms = 45000
max_dag_depth = 4

[retention]
completed_ttl = "1d"
failed_ttl = "off"
dlq_ttl = "12h"

[queues.emails]
rate_limit_per_second = 50
rate_limit_burst = 100

[queues.reports]
lease_ms = 120000

[dashboard]
enabled = true
"""


def test_dotted_get_and_sections() -> None:
    config = Config.from_toml(ORIGINAL_TOML)
    assert config.get("server.http_port") == 7000
    assert config.get("server.missing", 1) == 1
    assert config.get("server.host.deeper", "x") == "x"

    class Server(msgspec.Struct):
        host: str = "0.0.0.0"
        http_port: int = 6790
        workers: int = 1

    assert config.section("server", Server) == Server(host="127.0.0.1", http_port=7000)
    assert config.section("absent", Server) == Server()
    with pytest.raises(ConfigError, match=r"\[server\]"):
        Config.from_toml('[server]\nhttp_port = "lots"').section("server", Server)


def test_original_keys_map_onto_engine_settings() -> None:
    settings = engine_settings_from_config(Config.from_toml(ORIGINAL_TOML))
    assert settings.tick_interval_ms == 250
    assert settings.stall_check_interval_ms == 2000
    assert settings.stall_timeout_ms == 45000
    assert settings.max_dag_depth == 4
    defaults = settings.job_defaults
    assert (defaults.max_attempts, defaults.backoff, defaults.backoff_delay_ms, defaults.timeout_ms) == (
        5,
        "linear",
        200,
        60000,
    )
    assert settings.retention.completed_ttl_ms == 86_400_000
    assert settings.retention.failed_ttl_ms is None
    assert settings.retention.dlq_ttl_ms == 12 * 3_600_000
    assert settings.retention.cancelled_ttl_ms == 7 * 86_400_000  # untouched default
    queues = {q.name: q for q in settings.queues}
    assert queues["emails"].rate_limit_per_second == 50.0 and queues["emails"].rate_limit_burst == 100
    assert queues["reports"].lease_ms == 120000


def test_empty_file_keeps_defaults_with_server_stall_check() -> None:
    settings = engine_settings_from_config(Config())
    assert settings.tick_interval_ms == 1000
    assert settings.stall_timeout_ms == 30000
    assert settings.stall_check_interval_ms == 5000
    assert settings.job_defaults.max_attempts is None  # the original's unused defaults are not invented
    assert settings.queues == ()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[scheduler]\ntick_interval_ms = 0", "tick_interval"),
        ("[scheduler]\ntick_interval_ms = 'fast'", "scheduler.tick_interval_ms"),
        ("[retention]\ncompleted_ttl = '7 days'", "retention.completed_ttl"),
        ("[jobs]\ndefault_backoff = 'random'", "default_backoff"),
        ("[jobs]\nmax_dag_depth = 0", "max_dag_depth"),
        ("[queues.q]\nrate_limit_burst = 'x'", r"\[queues.q\]"),
        ("queues = 3", r"\[queues\] must be a table"),
    ],
)
def test_bad_values_are_configuration_errors(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        engine_settings_from_config(Config.from_toml(toml))


def test_invalid_toml_and_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        Config.load(bad)
    assert Config.load(tmp_path / "absent.toml", explicit=True).data == {}
    monkeypatch.chdir(tmp_path)
    assert Config.load().path is None  # no rustqueue.toml here
    (tmp_path / "rustqueue.toml").write_text("[server]\nhttp_port = 1234\n")
    assert Config.load().get("server.http_port") == 1234


@pytest.mark.parametrize(
    ("storage", "url"),
    [
        ("", DEFAULT_STORAGE_URL),
        ('url = "memory://"', "memory://"),
        ('backend = "in_memory"', "memory://"),
        ('backend = "sqlite"\npath = "./data"', "sqlite:///./data/rustqueue.db"),
        ('backend = "redb"\npath = "/srv/rq"', "sqlite:////srv/rq/rustqueue.db"),
        (
            'backend = "sqlite"\npath = "/srv/rq"\ndurability = "full"',
            "sqlite:////srv/rq/rustqueue.db?durability=full",
        ),
        (
            'backend = "hybrid"\nhybrid_snapshot_interval_ms = 500\nhybrid_max_dirty = 100',
            "sqlite:///./data/rustqueue.db?mode=hybrid&snapshot_interval=0.5&max_dirty=100",
        ),
        ('backend = "postgres"\npostgres_url = "postgresql://u@h/db"', "postgresql://u@h/db"),
    ],
)
def test_storage_url_from_original_keys(storage: str, url: str) -> None:
    assert storage_url_from_config(Config.from_toml(f"[storage]\n{storage}\n")) == url


def test_storage_backend_errors() -> None:
    with pytest.raises(ConfigError, match="postgres_url"):
        storage_url_from_config(Config.from_toml('[storage]\nbackend = "postgres"'))
    with pytest.raises(ConfigError, match=r"unknown storage\.backend"):
        storage_url_from_config(Config.from_toml('[storage]\nbackend = "rocks"'))


def test_sqlite_file_from_url() -> None:
    assert sqlite_file_from_url("sqlite:///data/rustqueue.db") == Path("data/rustqueue.db")
    assert sqlite_file_from_url("sqlite:////abs/jobs.db?durability=full") == Path("/abs/jobs.db")
    assert sqlite_file_from_url("memory://") is None


def registry() -> OptionRegistry:
    options = OptionRegistry()
    options.add(key="server.http_port", flag="--http-port", env="RUSTQUEUE_HTTP_PORT", type=int, default=6790)
    options.add(key="webhooks.enabled", flag="--webhooks", env="WEBHOOKS_ON", type=bool, default=False)
    options.add(key="webhooks.events", env="WEBHOOK_EVENTS", type=list)
    return options


def parse(options: OptionRegistry, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    options.add_to_parser(parser)
    return parser.parse_args(list(argv))


def test_precedence_flag_then_env_then_file_then_default() -> None:
    options = registry()
    file_config = Config.from_toml("[server]\nhttp_port = 7000\n")
    env = {"RUSTQUEUE_HTTP_PORT": "7100", "WEBHOOKS_ON": "yes", "WEBHOOK_EVENTS": "job.completed, job.failed"}

    config = Config.from_toml("[server]\nhttp_port = 7000\n")
    options.apply(config, env, parse(options, "--http-port", "7200", "--no-webhooks"))
    assert config.get("server.http_port") == 7200
    assert config.get("webhooks.enabled") is False
    assert config.get("webhooks.events") == ["job.completed", "job.failed"]
    assert config.sources["server.http_port"] == "--http-port"

    options.apply(file_config, env, parse(options))
    assert file_config.get("server.http_port") == 7100
    assert file_config.get("webhooks.enabled") is True

    config = Config.from_toml("[server]\nhttp_port = 7000\n")
    options.apply(config, {}, parse(options))
    assert config.get("server.http_port") == 7000
    assert config.get("webhooks.enabled") is False  # default filled in

    empty = Config()
    options.apply(empty, {}, None)
    assert empty.get("server.http_port") == 6790


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="RUSTQUEUE_HTTP_PORT"):
        registry().apply(Config(), {"RUSTQUEUE_HTTP_PORT": "port"}, None)
    with pytest.raises(ConfigError, match="WEBHOOKS_ON"):
        registry().apply(Config(), {"WEBHOOKS_ON": "maybe"}, None)


def test_option_and_command_collisions() -> None:
    options = registry()
    with pytest.raises(ConfigError, match="declared twice"):
        options.add(key="server.http_port")
    with pytest.raises(ConfigError, match="--http-port is declared by both"):
        options.add(key="other.port", flag="--http-port")
    commands = CommandRegistry(reserved=frozenset({"serve"}))
    commands.owner = "duckdb"
    commands.add("history", "job history", None, lambda args, host: 0)
    commands.owner = "other"
    with pytest.raises(ConfigError, match="'duckdb' and plugin 'other'"):
        commands.add("history", "again", None, lambda args, host: 0)
    with pytest.raises(ConfigError, match="built in"):
        commands.add("serve", "mine", None, lambda args, host: 0)


def test_set_refuses_to_overwrite_a_value_with_a_table() -> None:
    config = Config.from_toml('storage = "x"')
    with pytest.raises(ConfigError, match="must be a table"):
        config.set("storage.url", "memory://")


def test_memory_section_maps_onto_engine_settings() -> None:
    from rustqueue_core.config import Config, engine_settings_from_config

    config = Config.from_toml(
        "[memory]\nlimit_mb = 512\npressure_threshold = 0.8\ncritical_threshold = 0.9\nexit_threshold = 0.7\n"
    )
    settings = engine_settings_from_config(config)
    assert settings.memory_limit_mb == 512
    assert (settings.memory_pressure_threshold, settings.memory_critical_threshold) == (0.8, 0.9)
    assert settings.memory_exit_threshold == 0.7


def test_memory_thresholds_out_of_order_are_a_configuration_error() -> None:
    import pytest

    from rustqueue_core.config import Config, engine_settings_from_config
    from rustqueue_core.errors import ConfigError

    with pytest.raises(ConfigError, match="memory_exit_threshold"):
        engine_settings_from_config(Config.from_toml("[memory]\nlimit_mb = 64\nexit_threshold = 0.95\n"))
