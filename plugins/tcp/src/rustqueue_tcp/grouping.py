"""Which TCP commands of one read burst may be started together (see :mod:`rustqueue_tcp.commands`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def runs_writes_in_call_order(storage: Any) -> bool:
    """Whether the storage declares the ``ordered_writes`` capability."""
    capabilities = getattr(storage, "capabilities", None)
    return bool(getattr(capabilities, "ordered_writes", False))


def group_kind(name: str, command: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Commands that may run side by side with their neighbours of the same kind: pulls that do not
    wait, and acks (with the ids they name, which must not repeat within a group)."""
    if name == "pull":
        return ("pull", []) if not command.get("wait_ms") else ("", [])
    if name == "ack":
        job_id = command.get("id")
        return ("ack", [id_key(job_id)]) if isinstance(job_id, str) else ("", [])
    if name == "ack_batch" and "items" not in command:
        raw = command.get("ids")
        if isinstance(raw, list) and raw and all(isinstance(i, str) for i in raw):
            return "ack", [id_key(i) for i in raw]
    return "", []


def id_key(job_id: str) -> str:
    """One spelling per job id (the UUID parser accepts any case, with or without hyphens)."""
    return job_id.lower().replace("-", "").strip("{}")
