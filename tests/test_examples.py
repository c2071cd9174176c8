"""Every example script runs to completion in a fresh interpreter and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

EXPECTED_OUTPUT: dict[str, list[str]] = {
    "embedded_worker.py": [
        "worker: processed=3 succeeded=3 failed=0",
        "send-welcome completed {'delivered_to': 'ada@example.com'}",
        "send-welcome completed {'delivered_to': 'linus@example.com'}",
    ],
    "dag_flow.py": [
        "merge starts blocked",
        "ran merge-report after ['fetch-costs', 'fetch-sales']",
        "ran email-report with {'profit': 500}",
        "flow report-42: 4 of 4 jobs completed",
    ],
    "schedules.py": [
        "run 1: refresh {'scope': 'all'}",
        "run 3: refresh {'scope': 'all'}",
        "schedule fired at least 3 times: True, paused: True",
    ],
    "sync_app.py": [
        "pushed 20 jobs from 4 threads",
        "processed=20 succeeded=20",
        "first result {'width': 400, 'height': 300}",
        "completed 20",
    ],
    "workflow.py": [
        "workflow alone: {'words': 4, 'longest': 'quick'}",
        "completed {'words': 5, 'longest': 'infrastructure'}",
        "completed {'echo': 'hello'}",
    ],
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED_OUTPUT)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("script", sorted(EXPECTED_OUTPUT))
def test_example_runs_and_prints_its_results(script: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # examples must not depend on the working directory or leave files in it
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for expected in EXPECTED_OUTPUT[script]:
        assert expected in lines, f"{expected!r} missing from output:\n{proc.stdout}\n{proc.stderr}"
    assert list(tmp_path.iterdir()) == []
