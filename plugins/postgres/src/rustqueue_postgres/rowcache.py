"""How this backend keeps the core's row cache (:mod:`rustqueue_core.rowcache`) in step with the table.

Every update of a job row bumps its ``rev``; inserts and claims also record the writing storage
instance in ``writer``. A claim returns the whole row only when another writer touched it last, and
an ack only when the row's ``rev`` is not the one the cache predicts: otherwise the new job is the
cached one with the statement's own changes applied. A rev that does not match falls back to the row,
so the cache is correct with any number of nodes on one schema.

Entries are immutable snapshots (patching copies them), so a snapshot read before a statement is still
the row at its rev when the answer comes back, whatever other calls did to the cache meanwhile.
"""

from __future__ import annotations

from rustqueue_core.rowcache import GENERATION, RowCache

__all__ = ["GENERATION", "RowCache"]
