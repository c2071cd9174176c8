"""A storage's own copies of the jobs it wrote, so that claims and acks need not read or ship rows.

Every update of a stored row bumps its revision (``rev``). A storage that inserted or claimed a job
keeps it here with the row's ``rev``; when a later statement returns the ``rev`` the cache predicts,
nothing else (no other call, no other process or node) changed the row in between, and the new job is
the cached one with that statement's own changes. Any other ``rev`` falls back to reading the row, so
the cache is an optimisation only, never a source of truth.

The cache is bounded by generations: when the young generation is full it becomes the old one and the
previous old one is dropped. Rows claimed soon after their insert (the common case) stay cached; rows
that linger (a far-off delay, a paused queue, a row another process took) age out instead of filling
the cache for good.
"""

from __future__ import annotations

from collections.abc import Iterable

from rustqueue_core.models import Job

#: Rows per generation: at most twice as many are cached.
GENERATION = 20_000


class RowCache:
    """Jobs by id with the ``rev`` of the row each mirrors. A job handed to :meth:`put` belongs to the
    cache: callers must not change it afterwards (copy it first if they will)."""

    __slots__ = ("generation", "old", "young")

    def __init__(self, generation: int = GENERATION) -> None:
        self.generation = generation
        self.young: dict[str, tuple[int, Job]] = {}
        self.old: dict[str, tuple[int, Job]] = {}

    def put(self, job_id: str, rev: int, job: Job) -> None:
        young = self.young
        young[job_id] = (rev, job)
        if len(young) >= self.generation:
            self.old = young
            self.young = {}

    def get(self, job_id: str) -> tuple[int, Job] | None:
        entry = self.young.get(job_id)
        return entry if entry is not None else self.old.get(job_id)

    def pop(self, job_id: str) -> tuple[int, Job] | None:
        entry = self.young.pop(job_id, None)
        older = self.old.pop(job_id, None) if self.old else None
        return entry if entry is not None else older

    def take(self, job_id: str, rev: int) -> Job | None:
        """Remove ``job_id`` and return its job if a statement that returned ``rev`` was the only
        change since it was cached (``rev`` is the cached one plus one), else ``None``."""
        entry = self.pop(job_id)
        if entry is None or entry[0] + 1 != rev:
            return None
        return entry[1]

    def forget(self, ids: Iterable[str]) -> None:
        young, old = self.young, self.old
        for job_id in ids:
            young.pop(job_id, None)
            old.pop(job_id, None)

    def clear(self) -> None:
        self.young = {}
        self.old = {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)
