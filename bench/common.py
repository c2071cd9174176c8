"""Shared helpers for the benchmark scripts: repeats, medians, and the docs/benchmarks.md writer."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


@dataclass
class Result:
    group: str
    case: str
    system: str
    ops: int
    seconds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Median throughput in operations per second."""
        return self.ops / statistics.median(self.seconds)

    @property
    def spread(self) -> str:
        rates = sorted(self.ops / s for s in self.seconds)
        return f"{rates[0]:,.0f}–{rates[-1]:,.0f}"


async def timed(fn: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render_table(results: list[Result], ratios: dict[str, tuple[str, str]] | None = None) -> str:
    """A markdown table; ``ratios`` maps a result key ``group/case/system`` to (peer key, label)."""
    lines = ["| group | case | system | jobs/s (median) | range | ratio |", "|---|---|---|---:|---:|---|"]
    by_key = {f"{r.group}/{r.case}/{r.system}": r for r in results}
    for r in results:
        key = f"{r.group}/{r.case}/{r.system}"
        ratio = ""
        if ratios and key in ratios:
            peer_key, label = ratios[key]
            peer = by_key.get(peer_key)
            if peer:
                ratio = f"{r.rate / peer.rate:.2f}× {label}"
        lines.append(f"| {r.group} | {r.case} | {r.system} | {r.rate:,.0f} | {r.spread} | {ratio} |")
    return "\n".join(lines)


def write_section(name: str, body: str, command: str) -> None:
    """Replace (or append) the section delimited by ``<!-- bench:name -->`` markers."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nMedians of repeated runs; ratios compare systems measured in the same run.\n"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = (
        f"<!-- bench:{name} -->\n"
        f"Command: `{command}` — run {stamp} at commit {git_rev()} on {machine_line()}.\n\n"
        f"{body}\n"
        f"<!-- /bench:{name} -->"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"wrote section {name!r} of {DOC.relative_to(ROOT)}", file=sys.stderr)
