"""Loading every plugin's entry point stays cheap: heavy libraries are imported inside hook bodies."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = (
    "litestar",
    "uvicorn",
    "sqlalchemy",
    "asyncpg",
    "duckdb",
    "websockets",
    "prometheus_client",
    "opentelemetry",
    "httpx",
)
RSS_BUDGET_MB = 25


def run_python(code: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_loading_every_entry_point_imports_nothing_heavy() -> None:
    report = run_python(
        f"""
        import json, sys
        from importlib.metadata import entry_points
        from rustqueue_core.plugins import PluginHost
        loaded, failed = [], {{}}
        for ep in entry_points(group="rustqueue"):
            try:
                ep.load()
                loaded.append(ep.name)
            except Exception as exc:
                failed[ep.name] = repr(exc)
        host = PluginHost()
        for name in loaded:
            host.load_name(name)
        host.storage_backends()
        host.transports()
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print(json.dumps({{"loaded": loaded, "failed": failed, "heavy": heavy}}))
        """
    )
    assert report["failed"] == {}
    assert {"memory", "sqlite", "hello"} <= set(report["loaded"])  # type: ignore[arg-type]
    assert report["heavy"] == [], f"entry points imported {report['heavy']} at load time"


def test_import_rustqueue_core_stays_small() -> None:
    report = run_python(
        """
        import json
        import rustqueue_core
        from rustqueue_core import hookimpl
        with open("/proc/self/status") as status:
            rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        print(json.dumps({"rss_mb": rss_kb / 1024}))
        """
    )
    assert report["rss_mb"] < RSS_BUDGET_MB, f"import rustqueue_core uses {report['rss_mb']:.1f} MB"
