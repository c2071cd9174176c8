"""Make the plugin importable when its tests run from a source checkout without installing it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("rustqueue_dictstore") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
