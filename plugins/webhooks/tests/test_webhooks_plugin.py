"""The entry-point module: configuration, lifespan, per-engine binding, import budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rustqueue_webhooks.service import service_for

from rustqueue_core.builtin.sqlite import SQLiteStorage
from rustqueue_core.config import Config
from rustqueue_core.engine import RustQueue
from rustqueue_core.errors import ConfigError
from rustqueue_core.plugins import PluginHost


def _exists(path: Path) -> bool:
    return path.exists()


async def test_entry_point_lifespan_uses_the_config_and_binds_to_its_engine(
    tmp_path: Path, receiver: Any, until: Any
) -> None:
    config = Config.from_toml(
        f"""
        [webhooks]
        enabled = true
        retry_base_delay_ms = 10
        [[webhooks.endpoints]]
        url = "{receiver.url}"
        events = ["job.completed"]
        """
    )
    host = PluginHost(config=config)
    host.load_name("webhooks")
    host.configure(config)
    engine = RustQueue(SQLiteStorage(tmp_path / "data" / "jobs.db"), host=host)
    await engine.start()
    try:
        assert not host.has_jobs_changed
        (lifespan,) = [cm for name, cm in host.named_lifespans(engine) if name == "webhooks"]
        async with lifespan as service:
            assert service_for(engine) is service
            assert host.has_jobs_changed
            # Default outbox file: beside the SQLite job store.
            assert service.store_path == str(tmp_path / "data" / "rustqueue-webhooks.db")
            job_id = await engine.push("emails", "send")
            (job,) = await engine.claim("emails")
            await engine.ack(job.id)
            (req,) = await receiver.wait_for(1)
            assert req.json()["event"] == "job.completed"
            assert req.json()["data"]["job_id"] == job_id
            await until(lambda: service.delivered_total == 1)
            (check,) = [c for c in host.health(engine) if c.component == "webhooks"]
            assert check.state == "ok"
            assert check.detail.startswith("1 webhooks; 1 delivered, 0 failed")
        assert not [c for c in host.health(engine) if c.component == "webhooks"]
        assert not host.has_jobs_changed
        assert service_for(engine) is None
        assert _exists(tmp_path / "data" / "rustqueue-webhooks.db")
    finally:
        await engine.close()


def test_configure_rejects_an_invalid_section() -> None:
    host = PluginHost()
    host.load_name("webhooks")
    with pytest.raises(ConfigError, match="max_retries"):
        host.configure(Config.from_toml("[webhooks]\nmax_retries = -1\n"))
    other = PluginHost()
    other.load_name("webhooks")
    with pytest.raises(ConfigError, match="webhooks"):
        other.configure(Config.from_toml('[webhooks]\ndelivery_timeout_ms = "soon"\n'))


def test_importing_the_plugin_loads_neither_httpx_nor_litestar() -> None:
    code = (
        "import sys, rustqueue_webhooks, rustqueue_webhooks.plugin\n"
        "heavy = [m for m in ('httpx', 'litestar', 'sqlite3') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
