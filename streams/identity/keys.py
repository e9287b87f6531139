"""Key material of the token issuers: key ids, which algorithms a key may verify, 0600 key files.

Key ids are RFC 7638 JWK thumbprints, so the same public key always has the same id whoever
computes it (the embedded issuer, a PEM file of trusted keys, a JWKS document).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from streams.errors import ConfigurationError

__all__ = [
    "PrivateKey",
    "PublicKey",
    "algorithms_for",
    "key_id",
    "load_or_create_private_key",
    "load_public_keys",
    "public_pem",
    "write_public_pem",
]

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
PrivateKey = ec.EllipticCurvePrivateKey
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_PEM_END = b"-----END PUBLIC KEY-----"


def _jwk(key: PublicKey) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(key, as_dict=True)
    return OKPAlgorithm.to_jwk(key, as_dict=True)


def key_id(key: PublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of a public key."""
    jwk = _jwk(key)
    members = {m: jwk[m] for m in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def algorithms_for(key: Any) -> frozenset[str]:
    """The signature algorithms a public key can verify: a token's `alg` must be one of these, so an
    RSA key is never used for an EC algorithm (or any key as an HMAC secret)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({alg} if alg else ())
    if isinstance(key, rsa.RSAPublicKey):
        return frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_keys(path: Path) -> dict[str, PublicKey]:
    """Every `PUBLIC KEY` PEM block of `path` by key id (several keys: a rotation in progress)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the issuer's public key ({exc.strerror})") from None
    keys: dict[str, PublicKey] = {}
    for i, block in enumerate(b for b in data.split(_PEM_END) if b.strip()):
        try:
            key = serialization.load_pem_public_key(block + _PEM_END)
        except ValueError:
            raise ConfigurationError(f"{path}: key {i + 1} is not a PEM public key") from None
        if not isinstance(key, PublicKey) or not algorithms_for(key):
            raise ConfigurationError(f"{path}: key {i + 1} has a key type no accepted algorithm uses")
        keys[key_id(key)] = key
    if not keys:
        raise ConfigurationError(f"{path}: no PEM public key found")
    return keys


def load_or_create_private_key(path: Path) -> PrivateKey:
    """The embedded issuer's P-256 key: made on first run (mode 0600, directory 0700), then read.

    Written to a private temporary file and linked into place, so a concurrent first run (the demo's
    worker and `sharebus auth token`) reads either no file or a whole key, and one key wins.
    Refuses a key file others can read: whoever reads it can mint any token.
    """
    if path.exists():
        return _load_private_key(path)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.link(tmp, path)
    except FileExistsError:
        return _load_private_key(path)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot create the issuer key ({exc.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return key


def write_public_pem(path: Path, key: PublicKey) -> None:
    """Publish a public key for verifiers (atomically replaced: readers see one whole key)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(public_pem(key))
    tmp.chmod(0o644)
    os.replace(tmp, path)


def _load_private_key(path: Path) -> PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(f"{path}: issuer key is readable by others (mode {mode:04o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigurationError(f"{path}: the embedded issuer needs a P-256 (ES256) key")
    return key
