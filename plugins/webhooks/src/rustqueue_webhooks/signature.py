"""HMAC-SHA256 signatures of webhook bodies (the ``X-RustQueue-Signature`` header).

The signature is ``sha256=`` followed by the lowercase hex HMAC-SHA256 of the exact body bytes,
keyed with the secret's UTF-8 bytes. Receivers verify with :func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-RustQueue-Signature"
_PREFIX = "sha256="


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-RustQueue-Signature`` header value for ``body``: ``sha256=<64 hex chars>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret``.

    Compare in constant time, and verify the raw request bytes before parsing them: re-encoding
    parsed JSON does not reproduce the signed bytes.
    """
    if not header or not header.startswith(_PREFIX):
        return False
    expected = sign_body(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))
