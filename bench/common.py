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


def write_section(name: str, body: str, command: str, *, header: bool = True) -> None:
    """Replace (or append) the section delimited by ``<!-- bench:name -->`` markers; with ``header``
    the section starts with the command line, time, commit and machine that produced it."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nMedians of repeated runs; ratios compare systems measured in the same run.\n"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = f"Command: `{command}` — run {stamp} at commit {git_rev()} on {machine_line()}.\n\n" if header else ""
    block = f"<!-- bench:{name} -->\n{head}{body}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"wrote section {name!r} of {DOC.relative_to(ROOT)}", file=sys.stderr)


Case = Callable[[], Awaitable[float]]
"""One measurement: sets itself up, returns the seconds its timed part took."""


async def run_interleaved(
    group: str, systems: list[tuple[str, dict[str, Case]]], ops: int | dict[str, int], repeats: int
) -> list[Result]:
    """Run every (case, system) ``repeats`` times. Within a repeat, each case is measured for every
    system back to back (the system order rotates per repeat), so machine noise hits all alike."""
    by_key: dict[tuple[str, str], Result] = {}
    case_names: list[str] = []
    for _, cases in systems:
        case_names.extend(c for c in cases if c not in case_names)
    for repeat in range(repeats):
        order = systems[repeat % len(systems) :] + systems[: repeat % len(systems)]
        for case in case_names:
            for system, cases in order:
                if case not in cases:
                    continue
                seconds = await cases[case]()
                count = ops if isinstance(ops, int) else ops.get(case, ops["default"])
                result = by_key.setdefault((case, system), Result(group, case, system, count))
                result.seconds.append(seconds)
                print(f"[{repeat + 1}/{repeats}] {system:34} {case:32} {count / seconds:>10,.0f}/s", file=sys.stderr)
    return [by_key[(c, s)] for c in case_names for s, _ in systems if (c, s) in by_key]


@dataclass
class Target:
    text: str
    measured: str
    met: bool | None  # None: not measurable in this run


def write_targets(suite: str, targets: list[Target], command: str) -> None:
    """The suite's rows of the summary "Targets" table at the top of docs/benchmarks.md."""
    write_section(f"targets-{suite}", f"From `{command}`:\n\n{render_targets(targets)}", command, header=False)


def render_targets(targets: list[Target]) -> str:
    lines = ["| target | measured | met? |", "|---|---|---|"]
    for t in targets:
        mark = "n/a" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {t.text} | {t.measured} | {mark} |")
    return "\n".join(lines)


def rate_of(results: list[Result], case: str, system: str) -> float | None:
    for r in results:
        if r.case == case and r.system == system:
            return r.rate
    return None


def ratio_target(text: str, results: list[Result], case: str, system: str, peer: str, minimum: float) -> Target:
    mine, theirs = rate_of(results, case, system), rate_of(results, case, peer)
    if mine is None or theirs is None:
        return Target(text, "not measured", None)
    ratio = mine / theirs
    return Target(text, f"{ratio:.2f}× ({mine:,.0f} vs {theirs:,.0f} /s)", ratio >= minimum)


def floor_target(text: str, results: list[Result], case: str, system: str, minimum: float) -> Target:
    mine = rate_of(results, case, system)
    if mine is None:
        return Target(text, "not measured", None)
    return Target(text, f"{mine:,.0f} /s", mine >= minimum)


def proc_status_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS (current) and VmHWM (peak) of a process, in MB, from /proc/<pid>/status."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def merge(into: dict[tuple[str, str], Result], results: list[Result]) -> None:
    for r in results:
        if (r.case, r.system) in into:
            into[(r.case, r.system)].seconds.extend(r.seconds)
        else:
            into[(r.case, r.system)] = r
