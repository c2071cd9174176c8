"""HTTP REST transport (Litestar) for rustqueue, wire-compatible with RustQueue 0.3.

``create_app(engine)`` builds a standalone Litestar app; ``RustQueuePlugin(engine)`` mounts the API in
your own. Both are imported lazily so that loading the plugin entry point stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["RustQueuePlugin", "__version__", "create_app", "serve_http"]

_LAZY = {
    "create_app": "rustqueue_http.app",
    "RustQueuePlugin": "rustqueue_http.app",
    "serve_http": "rustqueue_http.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rustqueue_http' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
