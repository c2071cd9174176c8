"""qrusty's memory levels: settings, the level machine, and a real server driven past a small limit."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest
from rustqueue_qrusty.memory import QrustyMemoryMonitor
from rustqueue_qrusty.settings import MemorySettings, memory_settings, storage_url_for_mode

from rustqueue_core.config import Config
from rustqueue_core.errors import ConfigError

from .conftest import start_server, stop_server

MB = 1024 * 1024


def test_levels_follow_qrusty_thresholds_with_exit_hysteresis() -> None:
    monitor = QrustyMemoryMonitor(MemorySettings(limit_bytes=1000 * MB))
    levels = [monitor.update(int(f * 1000 * MB))[1] for f in (0.5, 0.81, 0.91, 0.85, 0.75, 0.69, 0.75, 0.95)]
    assert levels == [
        "normal",
        "pressure",
        "critical",
        "pressure",
        "pressure",
        "normal",
        "normal",
        "critical",
    ]


def test_settings_from_config_and_auto_limit() -> None:
    explicit = memory_settings(
        Config(
            data={
                "qrusty": {
                    "memory_limit_mb": "256",
                    "memory_pressure_threshold": 0.5,
                    "memory_critical_threshold": 0.6,
                    "memory_exit_threshold": 0.4,
                }
            }
        )
    )
    assert explicit == MemorySettings(limit_bytes=256 * MB, pressure=0.5, critical=0.6, exit=0.4, explicit=True)
    auto = memory_settings(Config(data={}))
    assert auto.limit_bytes is not None and auto.limit_bytes > 0 and not auto.explicit
    with pytest.raises(ConfigError):
        memory_settings(Config(data={"qrusty": {"memory_exit_threshold": 0.95}}))
    with pytest.raises(ConfigError):
        memory_settings(Config(data={"qrusty": {"memory_limit_mb": "lots"}}))


def test_storage_mode() -> None:
    assert storage_url_for_mode("memory", {}) == "memory://"
    assert storage_url_for_mode("MEMORY", {"storage.url": "sqlite:///x.db"}) is None  # explicit storage wins
    assert storage_url_for_mode("rocksdb", {}) is None
    assert storage_url_for_mode(None, {}) is None
    with pytest.raises(ConfigError):
        storage_url_for_mode("redis", {})


def test_storage_mode_memory_selects_memory_storage(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"STORAGE_MODE": "memory"}, storage=None)
    try:
        assert "(storage memory://)" in server.output()
        assert "kept in memory only" in server.output()
    finally:
        stop_server(server)


def _rss(pid: int) -> int:
    rss: int = psutil.Process(pid).memory_info().rss
    return rss


def test_publishes_refused_at_critical_without_losing_acknowledged_messages(tmp_path: Path) -> None:
    probe = start_server(tmp_path)
    try:
        time.sleep(0.5)
        baseline = _rss(probe.proc.pid)
    finally:
        stop_server(probe)
    # Critical (0.90 of the limit) lies ~40 MB above an idle server's resident memory.
    limit_mb = (baseline / MB + 40) / 0.90
    server = start_server(
        tmp_path, {"QRUSTY_MEMORY_LIMIT_MB": f"{limit_mb:.1f}", "QRUSTY_MEMORY_CHECK_INTERVAL_MS": "20"}
    )
    payload = "x" * 100_000
    accepted: list[str] = []
    refused = None
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            assert http.post("/create-queue", json={"name": "big"}).status_code == 200
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                response = http.post("/publish", json={"queue": "big", "priority": 1, "payload": payload})
                if response.status_code == 503:
                    refused = response
                    break
                assert response.status_code == 200, response.text
                accepted.append(response.json()["id"])
            assert refused is not None, f"never refused after {len(accepted)} publishes"
            assert refused.headers["retry-after"]
            assert refused.json()["code"] == "MEMORY_PRESSURE" and "memory" in refused.json()["message"]
            peak = _rss(server.proc.pid)
            # Refusals continue while critical and memory stays held near the limit.
            for _ in range(50):
                assert (
                    http.post("/publish", json={"queue": "big", "priority": 1, "payload": payload}).status_code == 503
                )
            assert _rss(server.proc.pid) < limit_mb * MB * 1.05
            assert peak < limit_mb * MB * 1.05
            health = http.get("/health").json()
            assert health["status"] == "ok" and health["memory"]["level"] == "critical"
            # Consumers keep working under pressure: every acknowledged publish is there, once.
            consumed: list[str] = []
            while True:
                message = http.post("/consume/big", json={"consumer_id": "drain"}).json()
                if message is None:
                    break
                assert message["payload"] == payload
                consumed.append(message["id"])
                assert http.post(f"/ack/big/{message['id']}", json={"consumer_id": "drain"}).status_code == 200
            assert sorted(consumed) == sorted(accepted) and len(set(consumed)) == len(accepted)
    finally:
        stop_server(server)
