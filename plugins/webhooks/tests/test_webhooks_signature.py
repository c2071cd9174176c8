"""Signature helpers: the header format of PROTOCOL §6 and constant-time verification."""

from __future__ import annotations

import hashlib
import hmac

from rustqueue_webhooks import sign_body, verify_signature


def test_signature_is_hex_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"event":"job.completed","webhook_id":"w","timestamp":"t","data":{"job_id":"j","queue":"q"}}'
    header = sign_body("s3cret", body)
    assert header == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert len(header.removeprefix("sha256=")) == 64
    assert header == header.lower()


def test_verify_accepts_the_right_signature_and_rejects_tampering() -> None:
    body = b'{"a":1}'
    header = sign_body("key", body)
    assert verify_signature("key", body, header)
    assert not verify_signature("key", b'{"a":2}', header)
    assert not verify_signature("other", body, header)
    assert not verify_signature("key", body, header.removeprefix("sha256="))
    assert not verify_signature("key", body, "")
    assert not verify_signature("key", body, None)
    assert not verify_signature("key", body, "sha256=" + "0" * 64)


def test_unicode_secret_is_utf8_keyed() -> None:
    body = b"{}"
    header = sign_body("clé", body)
    assert header == "sha256=" + hmac.new("clé".encode(), body, hashlib.sha256).hexdigest()
    assert verify_signature("clé", body, header)


def test_verify_rejects_non_ascii_header_without_raising() -> None:
    assert not verify_signature("key", b"{}", "sha256=é" + "0" * 63)
