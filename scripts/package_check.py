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


def main() -> int:
    dist = Path(sys.argv[1]).resolve()
    wheels = sorted(dist.glob("*.whl"))
    root = [w for w in wheels if w.name.startswith("rustqueue-0")]
    assert root, f"no root wheel in {dist}"
    top = {
        name.split("/")[0]
        for name in zipfile.ZipFile(root[0]).namelist()
        if not name.startswith("rustqueue-")
    }
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
    print("package check passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
