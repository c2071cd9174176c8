"""The tutorial plugin works embedded, with its configuration, and through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import rustqueue_plugin_hello as hello

from rustqueue_core import RustQueue
from rustqueue_core.config import Config
from rustqueue_core.plugins import PluginHost


async def test_counts_events_of_an_embedded_engine() -> None:
    before = sum(hello.seen.values())
    async with RustQueue.memory().plugins(["hello"]).build() as rq:
        job_id = await rq.push("emails", "welcome", {"to": "a@example.com"})
        (job,) = await rq.claim("emails", 1)
        await rq.ack(job.id, {"sent": True}, token=job.lease_token)
        health = await rq.health()
    assert job.id == job_id
    assert sum(hello.seen.values()) - before >= 3  # pushed, claimed (active), completed
    detail = next(check.detail for check in health.checks if check.component == "hello")
    assert detail is not None and detail.endswith("job events seen")


def test_configure_reads_the_hello_table() -> None:
    host = PluginHost.embedded(["hello"])
    host.configure(Config.from_toml('[hello]\ngreeting = "bonjour"\n'))
    (check,) = [c for c in host.health(engine=None) if c.component == "hello"]  # type: ignore[arg-type]
    assert check.detail is not None and check.detail.startswith("bonjour: ")
    host.configure(Config())
    (check,) = [c for c in host.health(engine=None) if c.component == "hello"]  # type: ignore[arg-type]
    assert check.detail is not None and check.detail.startswith("hello: ")


def test_listed_by_the_cli_as_an_installed_distribution(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUSTQUEUE_")}
    result = subprocess.run(
        [sys.executable, "-m", "rustqueue_core", "plugins", "--json", "--plugins=hello"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    row = next(r for r in json.loads(result.stdout) if r["name"] == "hello")
    assert (row["distribution"], row["status"]) == ("rustqueue-plugin-hello", "active")
    assert row["hooks"] == [
        "rustqueue_add_options",
        "rustqueue_configure",
        "rustqueue_health",
        "rustqueue_jobs_changed",
    ]
