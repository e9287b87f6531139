"""The embedded default's token issuer: a P-256 key made on first run, ES256 tokens.

Only for the embedded default and tests: a VRU points `SHARINGBUS_AUTH_JWKS_URL` (or a PEM file)
at its own identity provider instead, and this key is then trusted by nobody.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jwt

from streams.errors import ConfigurationError
from streams.identity.claims import ClaimNames
from streams.identity.keys import (
    PrivateKey,
    PublicKey,
    key_id,
    load_or_create_private_key,
    public_pem,
    write_public_pem,
)
from streams.identity.principal import TIERS, Tier
from streams.settings import Settings

__all__ = ["LocalIssuer"]

ALGORITHM = "ES256"


class LocalIssuer:
    def __init__(
        self,
        key: PrivateKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int = 3600,
        claims: ClaimNames | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.issuer, self.audience, self.ttl_seconds = issuer, audience, ttl_seconds
        self.claims = claims or ClaimNames()
        self.kid = key_id(key.public_key())
        self._clock = clock

    @staticmethod
    def key_path(settings: Settings) -> Path:
        return settings.auth_local_key_path or settings.data_dir / "identity" / "issuer.pem"

    @staticmethod
    def public_key_path(settings: Settings) -> Path:
        """Where the public half is published for verifiers, beside the private key."""
        key = LocalIssuer.key_path(settings)
        return key.with_name(f"{key.stem}.pub.pem")

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalIssuer:
        """The issuer of these settings, making its key on first run (and publishing the public key)."""
        key = load_or_create_private_key(cls.key_path(settings))
        public = cls.public_key_path(settings)
        pem = public_pem(key.public_key())
        if not public.exists() or public.read_bytes() != pem:
            write_public_pem(public, key.public_key())
        return cls(
            key,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            ttl_seconds=settings.auth_token_ttl_seconds,
            claims=ClaimNames.from_settings(settings),
        )

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key()

    @property
    def public_pem(self) -> bytes:
        return public_pem(self._key.public_key())

    def mint(
        self,
        subject: str,
        *,
        recipient: str | None = None,
        tier: Tier | None = None,
        partner: str | None = None,
        roles: Iterable[str] = (),
        ttl_seconds: int | None = None,
    ) -> str:
        """A signed bearer token for `subject`; the verifier still checks the recipient and tier cap."""
        if not subject.strip():
            raise ConfigurationError("a token needs a subject")
        if tier is not None and tier not in TIERS:
            raise ConfigurationError(f"tier must be one of {', '.join(TIERS)}; got {tier!r}")
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        optional = {
            self.claims.recipient: recipient,
            self.claims.tier: tier,
            self.claims.partner: partner,
            self.claims.roles: sorted(set(roles)) or None,
        }
        claims.update({k: v for k, v in optional.items() if v is not None})
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
