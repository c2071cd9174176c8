"""Signed webhooks with a durable outbox for rustqueue.

Receivers check deliveries with :func:`verify_signature`::

    from rustqueue_webhooks import verify_signature
    ok = verify_signature(secret, request_body_bytes, request.headers["X-RustQueue-Signature"])

Importing this package loads neither httpx nor Litestar.
"""

from __future__ import annotations

from rustqueue_webhooks.signature import SIGNATURE_HEADER, sign_body, verify_signature

__version__ = "0.1.0"

__all__ = ["SIGNATURE_HEADER", "__version__", "sign_body", "service_for", "verify_signature"]


def __getattr__(name: str) -> object:
    # ``service_for`` lives with the runtime; resolve it lazily so the import stays light.
    if name == "service_for":
        from rustqueue_webhooks.service import service_for

        return service_for
    raise AttributeError(f"module 'rustqueue_webhooks' has no attribute {name!r}")
