"""A storage instance's copy of the jobs it inserted and claimed, so claims and acks need not ship rows.

Every update of a job row bumps its ``rev``; inserts and claims also record the writing storage
instance in ``writer``. A claim returns the whole row only when another writer touched it last, and
an ack only when the row's ``rev`` is not the one the cache predicts: otherwise the new job is the
cached one with the statement's own changes applied. A rev that does not match falls back to the row,
so the cache is correct with any number of nodes on one schema.

Entries are immutable snapshots (patching copies them), so a snapshot read before a statement is still
the row at its rev when the answer comes back, whatever other calls did to the cache meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable

from rustqueue_core.models import Job

#: Rows per generation: at most twice as many are cached.
GENERATION = 20_000


class RowCache:
    """Jobs by id with the ``rev`` of the row they mirror. Bounded by generations: when the young one
    is full it becomes the old one and the previous old one is dropped, so rows claimed soon after
    their insert stay, and rows another node took age out."""

    __slots__ = ("generation", "old", "young")

    def __init__(self, generation: int = GENERATION) -> None:
        self.generation = generation
        self.young: dict[str, tuple[int, Job]] = {}
        self.old: dict[str, tuple[int, Job]] = {}

    def put(self, job_id: str, rev: int, job: Job) -> None:
        """Keep ``job`` (the caller hands it over: it must not be changed afterwards) at ``rev``."""
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
