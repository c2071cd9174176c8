"""Rewrite the dashboard screenshots in docs/images/ (needs Debian's chromium and chromium-driver).

Runs the browser test that seeds a demo server and photographs every page, telling it to write into the
repository instead of a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def main() -> int:
    env = {**os.environ, "RUSTQUEUE_SCREENSHOTS": "1"}
    test = "plugins/dashboard/tests/test_dashboard_browser.py::test_screenshots_of_every_page"
    return subprocess.call([sys.executable, "-m", "pytest", "-q", test], cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
