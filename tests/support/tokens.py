"""Pseudonym tokens spelled out from the contract (DESIGN.md, streams.privacy.keys), independently
of the implementation: RFC 5869 HKDF-SHA256 and the HMAC written out with the standard library."""

from __future__ import annotations

import base64
import hashlib
import hmac

HKDF_LABEL = b"sharingbus/pseudonym-domain-key/v1"


def domain_key(master: bytes, kid: str, domain: str) -> bytes:
    """HKDF-SHA256 (no salt, 32 bytes), info = label, then kid and domain each as 2-byte length + UTF-8."""
    info = HKDF_LABEL
    for part in (kid.encode(), domain.encode()):
        info += len(part).to_bytes(2, "big") + part
    prk = hmac.new(bytes(32), master, hashlib.sha256).digest()  # extract, salt = HashLen zeros
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()  # expand: one block is 32 bytes


def expected_token(master: bytes, kid: str, domain: str, kind: str, value: str) -> str:
    """'<kid>.' + 26 lower-case base32 chars of HMAC-SHA256(domain key, kind \\x1f value)."""
    mac = hmac.new(domain_key(master, kid, domain), f"{kind}\x1f{value}".encode(), hashlib.sha256).digest()
    return f"{kid}." + base64.b32encode(mac).decode()[:26].lower()
