"""Benchmark driver: ``python bench/run.py [embedded|server|postgres|all] [--n N] [--repeats R] [--no-write]``.

Each suite measures rustqueue and its peers in the same run and rewrites its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SUITES = ["embedded", "server", "postgres", "history"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", nargs="?", default="embedded", choices=[*SUITES, "all"])
    parser.add_argument("--n", type=int, default=10_000, help="jobs per case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    for suite in SUITES if args.suite == "all" else [args.suite]:
        module = importlib.import_module(suite)
        asyncio.run(module.run(args.n, args.repeats, not args.no_write, command.strip()))


if __name__ == "__main__":
    main()
