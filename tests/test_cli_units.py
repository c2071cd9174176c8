"""Small parts of the command line in process: readiness addresses, JSON logs, core options."""

from __future__ import annotations

import json
import logging
import types

from rustqueue_core.cli import JsonLogFormatter, core_options
from rustqueue_core.config import Config
from rustqueue_core.models import TransportSpec
from rustqueue_core.serve import _address


def spec(name: str = "http", bind: str = "0.0.0.0:6790") -> TransportSpec:
    return TransportSpec(name=name, default_bind=bind, description="", factory=lambda engine, config: None)


def test_transport_address_prefers_what_the_transport_reports() -> None:
    config = Config.from_toml("[server]\nhost = '127.0.0.1'\nhttp_port = 7000\n")
    assert _address("10.0.0.1:1234", spec(), config) == "10.0.0.1:1234"
    assert _address(types.SimpleNamespace(address=("::1", 99)), spec(), config) == "::1:99"
    assert _address(None, spec(), config) == "127.0.0.1:7000"
    assert _address(None, spec("qrusty", "0.0.0.0:6784"), config) == "127.0.0.1:6784"
    assert _address(None, spec("tcp", "0.0.0.0:6789"), Config()) == "0.0.0.0:6789"


def test_json_log_lines_are_valid_json() -> None:
    record = logging.LogRecord("rustqueue.x", logging.WARNING, __file__, 1, 'quote " and\nnewline', (), None)
    entry = json.loads(JsonLogFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "rustqueue.x"
    assert entry["message"] == 'quote " and\nnewline'


def test_core_options_follow_the_protocol_keys() -> None:
    options = {o.key: o for o in core_options()}
    assert (options["server.http_port"].flag, options["server.http_port"].env) == (
        "--http-port",
        "RUSTQUEUE_HTTP_PORT",
    )
    assert (options["server.tcp_port"].flag, options["server.tcp_port"].env) == (
        "--tcp-port",
        "RUSTQUEUE_TCP_PORT",
    )
    assert options["server.host"].default == "0.0.0.0"
    assert options["storage.url"].flag == "--storage"
    config = Config()
    core_options().apply(config, {"RUSTQUEUE_TCP_PORT": "7001"}, None)
    assert (config.get("server.http_port"), config.get("server.tcp_port")) == (6790, 7001)
