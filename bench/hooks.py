"""Hook-call micro-benchmark (ARCHITECTURE §3.2) for docs/benchmarks.md: a pluggy hook call with 0, 1
and 3 implementations, and the two guards the plugin host uses instead (``hook.get_hookimpls()``, and
the cached ``host.has_jobs_changed`` bool with its snapshot call).

The measurement itself is ``bench/hook_overhead.py`` (best of 5 × 200,000 calls); this suite repeats it
and reports the median of the repeats, plus what each call would cost per job at 50,000 jobs/s when
made once per job and once per 50-job batch.
"""

from __future__ import annotations

import platform
import statistics
from datetime import UTC, datetime

import pluggy
from common import write_section
from hook_overhead import measure

from rustqueue_core import JobEvent

JOBS_PER_SECOND = 50_000
BATCH = 50


def collect(repeats: int) -> dict[str, list[float]]:
    events = [JobEvent(kind="job.completed", job_id="1", queue="q", timestamp=datetime.now(UTC))]
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        for count in (0, 1, 3):
            for label, ns in measure(count, events):
                samples.setdefault(label, []).append(ns)
    return samples


def render(samples: dict[str, list[float]]) -> str:
    lines = [
        f"| call | ns per call (median) | range | share of a core per job at {JOBS_PER_SECOND:,}/s | "
        f"per {BATCH}-job batch |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, values in samples.items():
        ns = statistics.median(values)
        per_job = ns * JOBS_PER_SECOND / 1e9
        lines.append(
            f"| {label} | {ns:,.0f} | {min(values):,.0f}–{max(values):,.0f} | {per_job:.1%} | {per_job / BATCH:.2%} |"
        )
    return "\n".join(lines)


async def run(n: int, repeats: int, write: bool, command: str) -> None:
    del n  # the call count is fixed by hook_overhead (200,000 per timing, best of 5)
    samples = collect(repeats)
    body = (
        f"{render(samples)}\n\n"
        f"pluggy {pluggy.__version__}, CPython {platform.python_version()}; each figure is the median over "
        f"{repeats} repeats of the best of 5 × 200,000 calls. One event per call. The guarded rows are what "
        f"the engine pays when no plugin implements the hook; the snapshot rows are the host's "
        f"`jobs_changed` call (implementations called from a cached list, each isolated)."
    )
    print(body)
    if write:
        write_section("hooks", body, command)
