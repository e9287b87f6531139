"""Key ring for keyed pseudonyms: master keys by id, per-domain keys derived from them, rotation.

Tokens are HMAC-SHA256 (a plain hash of a 10-digit NHS number is reversible by enumeration) under a
key of their own pseudonym domain, derived from the master with HKDF-SHA256 (RFC 5869), the info
being `domain_key_info(kid, domain)`. Whoever holds one domain's key can therefore compute that
domain's tokens and no other's, and the master never has to leave the process that tokenises.
Tokens carry their key id, so keys can rotate while old tokens stay computable for linkage.

`KeyRing` is the only holder of key material in the code base: callers get a keyed HMAC primed for
one (domain, kind, key id) from `KeyRing.mac()` and copy it per value. Key bytes never appear in a
repr, a str or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streams.errors import ConfigurationError

__all__ = ["DomainKeys", "KeyRing", "domain_key_info", "pseudonym"]

_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # no "." (the token separator), no ":" / "," (env format)
_MIN_KEY_BYTES = 32
SEP = "\x1f"
# HKDF's label: changing it (or the encoding below) changes every token, so it carries a version.
HKDF_LABEL = b"sharingbus/pseudonym-domain-key/v1"
_B32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32 alphabet, lower-cased
_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # 10 bits -> 2 characters
_SHIFTS = tuple(range(120, -1, -10))


def _b32_26(digest: bytes) -> str:
    """`base64.b32encode(digest)[:26].lower()` (the first 130 bits), 3x faster than the stdlib's."""
    n = int.from_bytes(digest[:17], "big") >> 6
    return "".join([_B32_PAIRS[(n >> s) & 1023] for s in _SHIFTS])


@dataclass(frozen=True)
class _Key:
    secret: bytes = field(repr=False)
    created: str


def _decode_secret(kid: str, text: Any, where: str) -> bytes:
    """base64 (standard or URL-safe) -> bytes; errors name the key id, never the secret."""
    if not isinstance(text, str):
        raise ConfigurationError(f"{where}: key {kid!r}: secret must be a base64 string")
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where}: key {kid!r}: secret is not valid base64") from None
    if len(raw) < _MIN_KEY_BYTES:
        raise ConfigurationError(f"{where}: key {kid!r}: secret must be at least {_MIN_KEY_BYTES} bytes")
    return raw


def _check_kid(kid: Any, where: str) -> str:
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        raise ConfigurationError(f"{where}: key id must be 1-32 of [A-Za-z0-9_-]")
    return kid


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


def _derive(master: bytes, kid: str, domain: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=domain_key_info(kid, domain))
    return hkdf.derive(master)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyRing:
    """Key ids -> secrets, one of them active (used for new tokens); others kept to recompute old ones."""

    def __init__(self, keys: Mapping[str, _Key], active: str, retired: Iterable[str] = ()) -> None:
        if active not in keys:
            raise ConfigurationError(f"active key {active!r} is not in the key ring")
        self._keys: dict[str, _Key] = dict(keys)
        self._active = active
        self._retired = [k for k in retired if k not in self._keys]  # ids never to be issued again
        self._macs: dict[tuple[str, str, str], hmac.HMAC] = {}  # (kid, domain, kind) -> primed HMAC

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def from_secrets(cls, secrets_by_kid: Mapping[str, bytes], active: str) -> KeyRing:
        """A ring from raw key bytes (tests, or keys fetched from a KMS by the caller)."""
        keys = {}
        for kid, secret in secrets_by_kid.items():
            if len(secret) < _MIN_KEY_BYTES:
                raise ConfigurationError(f"key {kid!r}: secret must be at least {_MIN_KEY_BYTES} bytes")
            keys[_check_kid(kid, "key ring")] = _Key(bytes(secret), "")
        return cls(keys, active)

    @classmethod
    def generate(cls, kid: str = "k1") -> KeyRing:
        """A ring with one fresh random key (not saved)."""
        return cls({_check_kid(kid, "key ring"): _Key(secrets.token_bytes(32), _now())}, kid)

    @classmethod
    def load(cls, path: Path | str) -> KeyRing:
        """Read a key-ring file: {"active": kid, "keys": {kid: {"secret": base64, "created": iso}}}."""
        path = Path(path)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ConfigurationError(
                    f"{path}: key ring is open to group or others (mode {mode:04o}): run chmod 600 {path}"
                )
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(
                f"{path}: key ring file not found (create one with `sharebus keys rotate`)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: cannot read key ring ({type(exc).__name__})") from None
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}: not valid JSON (line {exc.lineno})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or not doc["keys"]:
            raise ConfigurationError(f"{path}: 'keys' must be a non-empty object")
        keys: dict[str, _Key] = {}
        for kid, entry in doc["keys"].items():
            _check_kid(kid, str(path))
            if not isinstance(entry, dict):
                raise ConfigurationError(f"{path}: key {kid!r} must be an object")
            secret = _decode_secret(kid, entry.get("secret"), str(path))
            keys[kid] = _Key(secret, str(entry.get("created", "")))
        active = doc.get("active")
        if active not in keys:
            raise ConfigurationError(f"{path}: 'active' must name one of the keys")
        retired = doc.get("retired", [])
        if not isinstance(retired, list):
            raise ConfigurationError(f"{path}: 'retired' must be a list of key ids")
        return cls(keys, active, [_check_kid(k, str(path)) for k in retired])

    @classmethod
    def from_spec(cls, spec: str, active: str | None = None) -> KeyRing:
        """From "k1:<base64>,k2:<base64>" (Settings.keys, SHARINGBUS_KEYS); active defaults to the last."""
        spec = spec.strip()
        if not spec:
            raise ConfigurationError("SHARINGBUS_KEYS is empty")
        keys: dict[str, _Key] = {}
        for i, item in enumerate(spec.split(","), start=1):
            kid, sep, secret = item.strip().partition(":")
            if not sep:
                raise ConfigurationError(f"SHARINGBUS_KEYS: entry {i} must be '<kid>:<base64>'")
            _check_kid(kid, "SHARINGBUS_KEYS")
            keys[kid] = _Key(_decode_secret(kid, secret.strip(), "SHARINGBUS_KEYS"), "")
        active = active or list(keys)[-1]
        if active not in keys:
            raise ConfigurationError(f"SHARINGBUS_ACTIVE_KEY {active!r} is not in SHARINGBUS_KEYS")
        return cls(keys, active)

    @classmethod
    def load_or_create(cls, path: Path | str) -> KeyRing:
        """Load `path`, or create it with one fresh random key (the embedded demo's default)."""
        path = Path(path)
        if path.exists():
            return cls.load(path)
        ring = cls.generate()
        ring.save(path)
        return ring

    # --- persistence and rotation -------------------------------------------------------------------

    def save(self, path: Path | str) -> None:
        """Write atomically with mode 0600 (the file holds the secrets)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc: dict[str, Any] = {
            "active": self._active,
            "keys": {
                kid: {"secret": base64.b64encode(k.secret).decode("ascii"), "created": k.created}
                for kid, k in self._keys.items()
            },
        }
        if self._retired:
            doc["retired"] = self._retired
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def rotate(self, path: Path | str | None = None) -> str:
        """Add a fresh key, make it active, keep the old ones; save to `path` if given. Returns its id."""
        numbers = [int(k[1:]) for k in [*self._keys, *self._retired] if re.fullmatch(r"k[0-9]+", k)]
        kid = f"k{max(numbers, default=0) + 1}"
        self._keys[kid] = _Key(secrets.token_bytes(32), _now())
        self._active = kid
        if path is not None:
            self.save(path)
        return kid

    def retire(self, kid: str, path: Path | str | None = None) -> None:
        """Remove `kid` (never the active one) and remember its id so it is never issued again:
        a new secret under an old id would make different pseudonyms look alike. Saves to `path`."""
        self._entry(kid)
        if kid == self._active:
            raise ConfigurationError(f"key {kid!r} is active: rotate to a new key before retiring it")
        del self._keys[kid]
        self._retired.append(kid)
        self._macs = {k: m for k, m in self._macs.items() if k[0] != kid}
        if path is not None:
            self.save(path)

    @property
    def retired(self) -> list[str]:
        return list(self._retired)

    # --- access -------------------------------------------------------------------------------------

    @property
    def active_id(self) -> str:
        return self._active

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def created(self, kid: str) -> str:
        return self._entry(kid).created

    def require(self, kid: str) -> None:
        """ConfigurationError unless `kid` is in the ring (fail closed at start, not per event)."""
        self._entry(kid)

    def _entry(self, kid: str) -> _Key:
        try:
            return self._keys[kid]
        except KeyError:
            raise ConfigurationError(f"key {kid!r} is not in the key ring") from None

    def mac(self, domain: str, kind: str, kid: str | None = None) -> hmac.HMAC:
        """HMAC-SHA256 under `domain`'s key of `kid` (default: active), primed with `kind` + SEP.

        Feed it the canonical value and take the digest; the object is a fresh copy, so callers that
        tokenise many values keep it and `.copy()` it per value (one HMAC copy each).
        """
        kid = kid or self._active
        primed = self._macs.get((kid, domain, kind))
        if primed is None:
            domain_key = _derive(self._entry(kid).secret, kid, domain)
            primed = hmac.new(domain_key, f"{kind}{SEP}".encode(), hashlib.sha256)
            self._macs[(kid, domain, kind)] = primed
        return primed.copy()

    def tokenizer(self, domain: str, kind: str, kid: str | None = None) -> Callable[[str | date], str]:
        """Token function for one (domain, kind, key), primed once so each call is one HMAC copy."""
        kid = kid or self._active
        prefix, fresh = f"{kid}.", self.mac(domain, kind, kid).copy

        def token(normalised: str | date) -> str:
            h = fresh()
            h.update(_canonical(normalised).encode())
            return prefix + _b32_26(h.digest())

        return token

    def __repr__(self) -> str:
        return f"KeyRing(active={self._active!r}, ids={self.ids!r})"

    __str__ = __repr__


def _canonical(value: str | date) -> str:
    """Text that is hashed: strings as they are, dates as ISO (what `normalise_dob` returns)."""
    return value if isinstance(value, str) else value.isoformat()


def pseudonym(
    keyring: KeyRing, domain: str, kind: str, normalised_value: str | date, kid: str | None = None
) -> str:
    """'<kid>.<26 lower-case base32 chars of HMAC-SHA256(domain key, kind \\x1f normalised)>'.

    The domain key is HKDF-SHA256(master of kid, info=domain_key_info(kid, domain)), 32 bytes.
    """
    kid = kid or keyring.active_id
    h = keyring.mac(domain, kind, kid)
    h.update(_canonical(normalised_value).encode())
    return f"{kid}." + _b32_26(h.digest())


class DomainKeys:
    """The derived keys of a few pseudonym domains, and no master key.

    For a role that must compute those domains' tokens and nothing else: the linker makes each
    recipient's person-view tokens (`streams.linkage.view_tokens`) with the `recipient:<id>` domain
    keys alone, so a compromise of the linker yields no identifier token of any domain. Built from
    the master where it lives (`derive`), carried to the linker as a 0600 file (`save`/`load`,
    `sharebus keys derive-views`). `mac` is the same keyed HMAC as `KeyRing.mac`, so both give the
    same tokens; a domain not held is a ConfigurationError, never an unkeyed token.
    """

    def __init__(self, keys: Mapping[tuple[str, str], bytes]) -> None:
        self._keys = dict(keys)  # (kid, domain) -> HKDF-derived domain key
        self._macs: dict[tuple[str, str, str], hmac.HMAC] = {}

    @classmethod
    def derive(cls, ring: KeyRing, domains: list[str], kid: str) -> DomainKeys:
        secret = ring._entry(kid).secret
        return cls({(kid, d): _derive(secret, kid, d) for d in domains})

    @classmethod
    def load(cls, path: Path | str) -> DomainKeys:
        """Read `{"keys": [{"kid", "domain", "key": base64}]}` (mode 0600, like the key ring)."""
        path = Path(path)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ConfigurationError(f"{path}: domain keys are open to group or others: chmod 600 {path}")
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(
                f"{path}: not found (make it with `sharebus keys derive-views`)"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"{path}: cannot read domain keys ({type(exc).__name__})") from None
        entries = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ConfigurationError(f"{path}: 'keys' must be a non-empty list")
        keys = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("domain"), str):
                raise ConfigurationError(f"{path}: keys[{i}] needs kid, domain and key")
            kid = _check_kid(entry.get("kid"), f"{path}: keys[{i}]")
            keys[(kid, entry["domain"])] = _decode_secret(kid, entry.get("key"), f"{path}: keys[{i}]")
        return cls(keys)

    def save(self, path: Path | str) -> None:
        """Write atomically with mode 0600 (the file holds keys)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {
            "keys": [
                {"kid": kid, "domain": d, "key": base64.b64encode(k).decode("ascii")}
                for (kid, d), k in sorted(self._keys.items())
            ]
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def kids(self) -> list[str]:
        return sorted({kid for kid, _ in self._keys})

    def require(self, kid: str) -> None:
        """ConfigurationError unless some domain key of `kid` is held (fail closed at start)."""
        if kid not in self.kids:
            raise ConfigurationError(f"no domain key of key {kid!r} is held")

    def mac(self, domain: str, kind: str, kid: str | None = None) -> hmac.HMAC:
        """HMAC-SHA256 under `domain`'s key of `kid`, primed with `kind` + SEP (as `KeyRing.mac`)."""
        kid = kid or (self.kids[-1] if self.kids else "")
        primed = self._macs.get((kid, domain, kind))
        if primed is None:
            key = self._keys.get((kid, domain))
            if key is None:
                raise ConfigurationError(f"no key of domain {domain!r} (key {kid!r}) is held")
            primed = hmac.new(key, f"{kind}{SEP}".encode(), hashlib.sha256)
            self._macs[(kid, domain, kind)] = primed
        return primed.copy()

    def __repr__(self) -> str:
        return f"DomainKeys(domains={sorted(d for _, d in self._keys)!r})"

    __str__ = __repr__
