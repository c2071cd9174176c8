"""A third-party-style rustqueue storage plugin: ``DictStorage`` under the URL scheme ``dict://``."""

from __future__ import annotations

from rustqueue_dictstore.storage import DictStorage

__all__ = ["DictStorage"]
__version__ = "0.1.0"
