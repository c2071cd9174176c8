"""Benchmark driver:
``python bench/run.py [embedded|server|postgres|qrusty|hooks|history|all] [--n N] [--repeats R] [--no-write]``.

Each suite measures rustqueue and its peers in the same run and rewrites its section of docs/benchmarks.md.
Without ``--n`` each suite uses its own default job count (``DEFAULT_N``), sized to finish in minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SUITES = ["embedded", "server", "postgres", "qrusty", "hooks", "history"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", nargs="?", default="embedded", choices=[*SUITES, "all"])
    parser.add_argument("--n", type=int, default=None, help="jobs per case (default: the suite's DEFAULT_N)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    command = ("python bench/run.py " + " ".join(sys.argv[1:])).strip()
    for suite in SUITES if args.suite == "all" else [args.suite]:
        module = importlib.import_module(suite)
        n = args.n if args.n is not None else getattr(module, "DEFAULT_N", 10_000)
        asyncio.run(module.run(n, args.repeats, not args.no_write, command))


if __name__ == "__main__":
    main()
