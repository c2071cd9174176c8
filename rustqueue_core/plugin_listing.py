"""Rows of ``rustqueue plugins``: every plugin the host knows of, with its status. Never raises."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from rustqueue_core.errors import PluginError
from rustqueue_core.plugin_discovery import CORE_PLUGIN, FIRST_PARTY, install_hint, installed_plugins

if TYPE_CHECKING:
    from rustqueue_core.models import StorageSpec
    from rustqueue_core.plugins import PluginHost

logger = logging.getLogger("rustqueue.plugins")

_KIND_BY_HOOK = (
    ("rustqueue_storage_backends", "storage"),
    ("rustqueue_transports", "transport"),
    ("rustqueue_authenticate", "decisions"),
    ("rustqueue_authorize", "decisions"),
    ("rustqueue_jobs_changed", "events"),
    ("rustqueue_before_push", "events"),
    ("rustqueue_worker_middleware", "middleware"),
)


class PluginInfo(msgspec.Struct, kw_only=True):
    """One row of ``rustqueue plugins``."""

    name: str
    kind: str
    distribution: str | None
    version: str | None
    module: str | None
    hooks: list[str]
    status: str
    schemes: list[str] | None = None
    capabilities: dict[str, Any] | None = None
    install: str | None = None


def plugin_kind(name: str, hooks: Sequence[str]) -> str:
    """First-party plugins have a declared kind; others are named by the hooks they implement."""
    if name == CORE_PLUGIN:
        return "core"
    if name in FIRST_PARTY:
        return FIRST_PARTY[name][0]
    for hook, kind in _KIND_BY_HOOK:
        if hook in hooks:
            return kind
    return "extension"


def _capabilities(specs: Sequence[StorageSpec]) -> dict[str, Any] | None:
    if not specs:
        return None
    caps = msgspec.to_builtins(specs[0].capabilities)
    return caps if isinstance(caps, dict) else None


def describe_plugins(host: PluginHost, *, available: bool = False) -> list[PluginInfo]:
    rows: list[PluginInfo] = []
    storage: dict[str, list[StorageSpec]] = {}
    try:
        for owner, spec in host.storage_owners():
            storage.setdefault(owner, []).append(spec)
    except PluginError as exc:
        logger.warning("listing storage backends failed: %s", exc)
    installed = installed_plugins()
    for reg in host.registrations():
        hooks = [caller.name for caller in host.pm.get_hookcallers(reg.plugin) or ()]
        dist, version = host.distribution_of(reg.name) or (None, None)
        specs = storage.get(reg.name, [])
        rows.append(
            PluginInfo(
                name=reg.name,
                kind=plugin_kind(reg.name, hooks),
                distribution=dist,
                version=version,
                module=reg.module,
                hooks=hooks,
                status="active",
                schemes=[s for spec in specs for s in spec.schemes] or None,
                capabilities=_capabilities(specs),
            )
        )
    active = {reg.name for reg in host.registrations()}
    for name, candidates in installed.items():
        if name in active:
            continue
        first = candidates[0]
        if name in host.failures:
            status = f"failed: {host.failures[name][0]}"
        elif len(candidates) > 1:
            status = "failed: offered by " + " and ".join(c.label for c in candidates)
        elif name in host.blocked:
            status = f"blocked ({host.blocked[name]})"
        else:
            status = "not selected"
        rows.append(
            PluginInfo(
                name=name,
                kind=plugin_kind(name, ()) if name in FIRST_PARTY else "unknown",
                distribution=first.distribution,
                version=first.version,
                module=first.module,
                hooks=[],
                status=status,
            )
        )
    for name, (reason, label) in host.failures.items():
        if name not in installed and name not in active:
            rows.append(
                PluginInfo(
                    name=name,
                    kind="unknown",
                    distribution=label,
                    version=None,
                    module=name,
                    hooks=[],
                    status=f"failed: {reason}",
                )
            )
    if available:
        for name, (kind, _) in FIRST_PARTY.items():
            if name not in installed:
                rows.append(
                    PluginInfo(
                        name=name,
                        kind=kind,
                        distribution=f"rustqueue-{name}",
                        version=None,
                        module=None,
                        hooks=[],
                        status="not installed",
                        install=install_hint(name),
                    )
                )
    return rows
