"""Resolve a storage URL to the ``StorageSpec`` that serves it, through entry points of group ``rustqueue``.

Standard library only, so subprocesses (crash tests) can use it without pytest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rustqueue_core.models import StorageSpec
from rustqueue_core.storage import Storage

#: Entry-point name that serves a URL scheme when the names differ.
_SCHEME_TO_ENTRY_POINT = {"postgresql": "postgres", "postgres": "postgres"}

_spec_cache: dict[str, StorageSpec] = {}


def url_scheme(url: str) -> str:
    scheme = url.split(":", 1)[0].lower()
    return scheme


def _entry_point_name(scheme: str) -> str:
    base = scheme.split("+", 1)[0]
    return _SCHEME_TO_ENTRY_POINT.get(base, base)


def _specs_of(module: Any) -> list[StorageSpec]:
    provider = getattr(module, "rustqueue_storage_backends", None)
    if provider is None:
        return []
    offered = provider()
    if offered is None:
        return []
    if isinstance(offered, StorageSpec):
        return [offered]
    return list(offered)


def _scheme_matches(spec: StorageSpec, scheme: str) -> bool:
    return scheme in spec.schemes or scheme.split("+", 1)[0] in spec.schemes


def resolve_storage_spec(url: str) -> StorageSpec:
    """The spec whose ``schemes`` contain the URL's scheme. The entry point named for the scheme is
    tried first, so resolving ``sqlite://`` does not import every installed plugin."""
    scheme = url_scheme(url)
    cached = _spec_cache.get(scheme)
    if cached is not None:
        return cached
    wanted = _entry_point_name(scheme)
    candidates = list(entry_points(group="rustqueue"))
    candidates.sort(key=lambda ep: ep.name != wanted)
    for ep in candidates:
        try:
            module = ep.load()
        except Exception:
            if ep.name == wanted:
                raise
            continue
        for spec in _specs_of(module):
            if _scheme_matches(spec, scheme):
                _spec_cache[scheme] = spec
                return spec
    raise LookupError(f"no storage plugin handles {scheme + '://'!r} (entry-point group 'rustqueue')")


def open_storage_unopened(url: str, options: Mapping[str, Any] | None = None) -> Storage:
    """Build (without opening) the storage a URL names."""
    spec = resolve_storage_spec(url)
    return spec.factory(url, dict(options or {}))


def with_query(url: str, **params: str) -> str:
    """``url`` with query parameters set (replacing existing ones of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def without_query(url: str, names: Sequence[str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(query)))
