"""End to end through ``rustqueue serve``: the configured webhook receives signed deliveries of jobs
pushed over HTTP, and deliveries pending at shutdown are sent after the server starts again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rustqueue_webhooks import verify_signature


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, tmp_path: Path, receiver_url: str) -> None:
        self.http_port = _free_port()
        self.tcp_port = _free_port()
        self.config = tmp_path / "rustqueue.toml"
        self.config.write_text(
            f"""
[server]
host = "127.0.0.1"
http_port = {self.http_port}
tcp_port = {self.tcp_port}

[webhooks]
enabled = true
retry_base_delay_ms = 50

[[webhooks.endpoints]]
url = "{receiver_url}"
events = ["job.pushed"]
secret = "serve-secret"
"""
        )
        self.storage = f"sqlite:///{tmp_path / 'data' / 'jobs.db'}"
        self.cwd = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "rustqueue_core",
            "serve",
            "--config",
            str(self.config),
            "--storage",
            self.storage,
            "--plugins=http,webhooks,metrics",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUSTQUEUE_")}
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read().decode() if self.proc.stdout else ""
            try:
                health = httpx.get(f"{self.base}/api/v1/health", timeout=1)
                if health.status_code == 200 and health.json().get("state") == "ready":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not become healthy")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_serve_delivers_and_resumes_after_restart(tmp_path: Path, receiver: Any) -> None:
    import asyncio

    server = _Server(tmp_path, receiver.url)
    server.start()
    try:
        hooks = httpx.get(f"{server.base}/api/v1/webhooks", timeout=5).json()["webhooks"]
        assert [h["url"] for h in hooks] == [receiver.url]
        resp = httpx.post(f"{server.base}/api/v1/queues/emails/jobs", json={"name": "send", "data": {}}, timeout=5)
        job_id = resp.json()["id"]
        (req,) = asyncio.run(receiver.wait_for(1))
        assert req.json()["data"] == {"job_id": job_id, "queue": "emails"}
        assert verify_signature("serve-secret", req.body, req.headers["x-rustqueue-signature"])
        # The metrics plugin reads the delivery counters of this engine's webhooks.
        for _ in range(100):
            scrape = httpx.get(f"{server.base}/api/v1/metrics", timeout=5).json()["metrics"]
            if scrape["webhooks_delivered_total"] == 1:
                break
            time.sleep(0.05)
        assert scrape["webhooks_delivered_total"] == 1
        assert scrape["jobs_pushed_total"] == 1
        # The receiver stops answering: the next delivery is in flight at shutdown, stays pending in
        # the outbox and is sent after the restart.
        receiver.default = "hang"
        second = httpx.post(f"{server.base}/api/v1/queues/emails/jobs", json={"name": "b", "data": {}}, timeout=5)
        asyncio.run(receiver.wait_for(2))
    finally:
        assert server.stop() == 0
    assert (tmp_path / "data" / "rustqueue-webhooks.db").exists()

    receiver.default = 200
    server.start()
    try:
        reqs = asyncio.run(receiver.wait_for(3))
        assert reqs[1].json()["data"]["job_id"] == second.json()["id"]
        assert reqs[2].body == reqs[1].body
        assert verify_signature("serve-secret", reqs[-1].body, reqs[-1].headers["x-rustqueue-signature"])
    finally:
        assert server.stop() == 0
