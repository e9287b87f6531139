"""Pseudonym domain keys: HKDF-derived from a master key, one per (key id, domain), and the keyed HMAC.

A token is HMAC-SHA256 under its domain's key, the message primed with the token kind and `SEP`.
The domain key is HKDF-SHA256 (RFC 5869) of the master, the info being `domain_key_info(kid,
domain)`: whoever holds one domain's key can compute that domain's tokens and no other's.

`DomainKeys` holds a few derived keys and no master: for a role that must compute those domains'
tokens and nothing else. The linker makes each recipient's person-view tokens
(`streams.linkage.view_tokens`) with the `recipient:<id>` domain keys alone, so a compromise of the
linker yields no identifier token of any domain. `KeyRing.domain_keys` derives them where the
master lives; they reach the linker as a 0600 file (`save`/`load`, `sharebus keys derive-views`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streams.errors import ConfigurationError
from streams.privacy.keyfiles import check_kid, decode_secret, read_private, write_private

__all__ = ["HKDF_LABEL", "SEP", "DomainKeys", "PrimedMacs", "derive_domain_key", "domain_key_info"]

SEP = "\x1f"
# HKDF's label: changing it (or the encoding below) changes every token, so it carries a version.
HKDF_LABEL = b"sharingbus/pseudonym-domain-key/v1"
_WHAT = "domain key set"

KeyOf = Callable[[str, str], bytes]  # (kid, domain) -> that domain's key


def domain_key_info(kid: str, domain: str) -> bytes:
    """HKDF info for one (key id, domain): the label, then each part as 2-byte length + UTF-8.

    Length prefixes make the encoding unambiguous: no (kid, domain) pair encodes like another,
    whatever characters a domain holds.
    """
    out = bytearray(HKDF_LABEL)
    for part in (kid, domain):
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(2, "big") + raw
    return bytes(out)


def derive_domain_key(master: bytes, kid: str, domain: str) -> bytes:
    """The 32-byte key of `domain` under master key `kid`."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=domain_key_info(kid, domain))
    return hkdf.derive(master)


class PrimedMacs:
    """HMACs primed once per (kid, domain, kind) with `kind` + SEP; `mac` hands out copies.

    Priming (and, for a key ring, the HKDF derivation behind `key_of`) costs far more than a copy,
    and a tokenising stage keys millions of values with a handful of (domain, kind) pairs.
    """

    def __init__(self) -> None:
        self._primed: dict[tuple[str, str, str], hmac.HMAC] = {}

    def mac(self, kid: str, domain: str, kind: str, key_of: KeyOf) -> hmac.HMAC:
        primed = self._primed.get((kid, domain, kind))
        if primed is None:
            primed = hmac.new(key_of(kid, domain), f"{kind}{SEP}".encode(), hashlib.sha256)
            self._primed[(kid, domain, kind)] = primed
        return primed.copy()

    def forget(self, kid: str) -> None:
        """Drop every HMAC of key `kid` (it left the ring)."""
        self._primed = {k: m for k, m in self._primed.items() if k[0] != kid}


class DomainKeys:
    """The derived keys of a few pseudonym domains, and no master key.

    `mac` is the same keyed HMAC as `KeyRing.mac`, so both give the same tokens; a domain not held
    is a ConfigurationError, never an unkeyed token.
    """

    def __init__(self, keys: Mapping[tuple[str, str], bytes]) -> None:
        self._keys = dict(keys)  # (kid, domain) -> HKDF-derived domain key
        self._macs = PrimedMacs()

    @classmethod
    def load(cls, path: Path | str) -> DomainKeys:
        """Read `{"keys": [{"kid", "domain", "key": base64}]}` (mode 0600, like the key ring)."""
        path = Path(path)
        doc = read_private(path, _WHAT, "make it with `sharebus keys derive-views`")
        entries = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ConfigurationError(f"{path}: 'keys' must be a non-empty list")
        keys = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("domain"), str):
                raise ConfigurationError(f"{path}: keys[{i}] needs kid, domain and key")
            kid = check_kid(entry.get("kid"), f"{path}: keys[{i}]")
            keys[(kid, entry["domain"])] = decode_secret(kid, entry.get("key"), f"{path}: keys[{i}]")
        return cls(keys)

    def save(self, path: Path | str) -> None:
        """Write atomically with mode 0600 (the file holds keys)."""
        write_private(
            Path(path),
            {
                "keys": [
                    {"kid": kid, "domain": d, "key": base64.b64encode(k).decode("ascii")}
                    for (kid, d), k in sorted(self._keys.items())
                ]
            },
        )

    @property
    def kids(self) -> list[str]:
        return sorted({kid for kid, _ in self._keys})

    def require(self, kid: str) -> None:
        """ConfigurationError unless some domain key of `kid` is held (fail closed at start)."""
        if kid not in self.kids:
            raise ConfigurationError(f"no domain key of key {kid!r} is held")

    def mac(self, domain: str, kind: str, kid: str | None = None) -> hmac.HMAC:
        """HMAC-SHA256 under `domain`'s key of `kid`, primed with `kind` + SEP (as `KeyRing.mac`)."""
        return self._macs.mac(kid or (self.kids[-1] if self.kids else ""), domain, kind, self._key)

    def _key(self, kid: str, domain: str) -> bytes:
        key = self._keys.get((kid, domain))
        if key is None:
            raise ConfigurationError(f"no key of domain {domain!r} (key {kid!r}) is held")
        return key

    def __repr__(self) -> str:
        return f"DomainKeys(domains={sorted(d for _, d in self._keys)!r})"

    __str__ = __repr__
