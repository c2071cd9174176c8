"""Packaging check: build every distribution, install ``rustqueue[postgres,otel]`` from the built wheels into a
fresh virtual environment, and check what the installed ``rustqueue plugins --json`` reports.

Usage: ``python scripts/package_check.py DIST_DIR``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def run(*cmd: str, **kw: object) -> str:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout  # type: ignore[call-overload,no-any-return]


def server_check(dist: Path, tmp: Path) -> None:
    """As a new user: ``pip install 'rustqueue[server]'`` into a fresh venv, ``rustqueue serve``, then push,
    pull and ack over HTTP and read the queue back with the CLI."""
    import socket
    import time
    import urllib.request

    venv = tmp / "server-venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "pip"), "install", "-q", "--find-links", str(dist), "rustqueue[server]")
    run(str(venv / "bin" / "pip"), "check")
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    http_port, tcp_port = ports
    workdir = tmp / "serve"
    workdir.mkdir()
    server = subprocess.Popen(
        [str(venv / "bin" / "rustqueue"), "serve", "--host", "127.0.0.1", "--http-port", str(http_port),
         "--tcp-port", str(tcp_port)],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{http_port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"{base}/health", timeout=2).read())
                if health.get("state") == "ready":
                    break
            except OSError:
                pass
            assert server.poll() is None, f"server exited: {server.stdout.read() if server.stdout else ''}"
            assert time.monotonic() < deadline, "server not ready in 30 s"
            time.sleep(0.1)
        push = urllib.request.Request(
            f"{base}/queues/pkg/jobs", data=b'{"name":"check","data":{"n":1}}', method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        job_id = json.loads(urllib.request.urlopen(push, timeout=5).read())["id"]
        pulled = json.loads(urllib.request.urlopen(f"{base}/queues/pkg/jobs", timeout=5).read())["job"]
        assert pulled["id"] == job_id, pulled
        ack = urllib.request.Request(
            f"{base}/jobs/{job_id}/ack", data=b"", method="POST", headers={"Content-Type": "application/json"}
        )
        assert json.loads(urllib.request.urlopen(ack, timeout=5).read()) == {"ok": True}
        status = run(str(venv / "bin" / "rustqueue"), "status", "--http-port", str(http_port), "--json")
        assert '"pkg"' in status, status
    finally:
        server.terminate()
        server.wait(30)
    assert server.returncode == 0, f"serve exited with {server.returncode}"
    assert (workdir / "data" / "rustqueue.db").exists(), "the default SQLite file was not created"


def main() -> int:
    dist = Path(sys.argv[1]).resolve()
    wheels = sorted(dist.glob("*.whl"))
    root = [w for w in wheels if w.name.startswith("rustqueue-0")]
    assert root, f"no root wheel in {dist}"
    top = {name.split("/")[0] for name in zipfile.ZipFile(root[0]).namelist() if not name.startswith("rustqueue-")}
    assert top == {"rustqueue_core"}, f"root wheel holds more than rustqueue_core: {top}"
    with tempfile.TemporaryDirectory(prefix="rq-pkg-") as tmp:
        venv = Path(tmp) / "venv"
        run(sys.executable, "-m", "venv", str(venv))
        pip = str(venv / "bin" / "pip")
        run(pip, "install", "-q", "--find-links", str(dist), "rustqueue[postgres,otel]")
        run(pip, "check")
        listing = json.loads(run(str(venv / "bin" / "rustqueue"), "plugins", "--json", cwd=tmp))
        rows = listing["plugins"] if isinstance(listing, dict) else listing
        status = {row["name"]: row for row in rows}
        for name in ("memory", "sqlite", "postgres", "otel"):
            assert name in status, f"{name} not listed: {sorted(status)}"
            assert status[name].get("version") == "0.1.0", status[name]
        assert "http" not in status, "http must not be installed by rustqueue[postgres,otel]"
        budget = (
            "import importlib.metadata as m, sys\n"
            "for ep in m.entry_points(group='rustqueue'): ep.load()\n"
            "heavy = {'litestar','sqlalchemy','duckdb','websockets','prometheus_client','opentelemetry'}\n"
            "loaded = heavy & {n.split('.')[0] for n in sys.modules}\n"
            "assert not loaded, loaded\n"
        )
        run(str(venv / "bin" / "python"), "-c", budget)
        server_check(dist, Path(tmp))
    print("package check passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
