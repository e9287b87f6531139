"""Bearer-token verification with PyJWT: signature, algorithm, expiry, issuer, audience, claims.

Keys come from the identity provider's JWKS (any OIDC issuer: Entra ID, Keycloak, ...) or a PEM
file, by default the embedded issuer's public key. The token's `alg` must be both configured and
one its key can verify (no HMAC, no `none`, no RSA key read as an EC one). The required claims are
exp, iat, iss, aud and sub; recipient and tier come from claims and are checked against
`recipients.yaml`. Every refusal is an `AuthError` with one line saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jwt

from streams.errors import ConfigurationError
from streams.identity.claims import ClaimNames, principal_from_claims
from streams.identity.errors import AuthError
from streams.identity.keys import algorithms_for, load_public_keys
from streams.identity.principal import Principal
from streams.identity.recipients import RecipientCaps
from streams.settings import Settings

__all__ = ["JwksKeys", "StaticKeys", "TokenVerifier"]

ASYMMETRIC = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
REQUIRED = ["exp", "iat", "iss", "aud", "sub"]
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidIssuedAtError, "invalid claim iat"),
)


class KeySource(Protocol):
    remote: bool

    def key_for(self, kid: str | None) -> Any:
        """The public key a token with this `kid` must verify against; AuthError when there is none."""


class StaticKeys:
    """Public keys by key id, from a PEM file (several: a rotation in progress)."""

    remote = False

    def __init__(self, keys: Mapping[str, Any]) -> None:
        self._keys = dict(keys)

    def key_for(self, kid: str | None) -> Any:
        if kid is None:
            if len(self._keys) == 1:
                return next(iter(self._keys.values()))
            raise AuthError("token has no key id (kid)")
        key = self._keys.get(kid)
        if key is None:
            raise AuthError("unknown key id")
        return key


class JwksKeys:
    """The identity provider's published keys (PyJWT's `PyJWKClient`, cached; refetched for a new kid)."""

    remote = True

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=int(timeout))

    def key_for(self, kid: str | None) -> Any:
        if kid is None:
            raise AuthError("token has no key id (kid)")
        try:
            return self._client.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError:
            raise AuthError("cannot fetch the identity provider's keys (JWKS)") from None
        except jwt.PyJWKClientError:
            raise AuthError("unknown key id") from None


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        caps: RecipientCaps,
        algorithms: frozenset[str] = frozenset({"ES256"}),
        leeway: int = 30,
        claims: ClaimNames | None = None,
    ) -> None:
        unsafe = sorted(algorithms - ASYMMETRIC)
        if unsafe or not algorithms:
            raise ConfigurationError(
                f"auth_algorithms: {', '.join(unsafe) or 'none given'}: use asymmetric ones "
                f"({', '.join(sorted(ASYMMETRIC))})"
            )
        self.keys, self.issuer, self.audience, self.caps = keys, issuer, audience, caps
        self.algorithms, self.leeway = algorithms, leeway
        self.claims = claims or ClaimNames()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """JWKS URL, else PEM file, else the embedded issuer's public key (made on first run)."""
        keys: KeySource
        if settings.auth_jwks_url:
            keys = JwksKeys(settings.auth_jwks_url)
        elif settings.auth_public_key_path:
            keys = StaticKeys(load_public_keys(settings.auth_public_key_path))
        else:
            from streams.identity.issuer import LocalIssuer

            public = LocalIssuer.public_key_path(settings)
            if not public.exists():
                LocalIssuer.from_settings(settings)
            keys = StaticKeys(load_public_keys(public))
        return cls(
            keys,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            caps=RecipientCaps.in_dir(settings.agreements_dir),
            algorithms=frozenset(a.strip() for a in settings.auth_algorithms.split(",") if a.strip()),
            leeway=settings.auth_leeway_seconds,
            claims=ClaimNames.from_settings(settings),
        )

    @property
    def remote(self) -> bool:
        """True when verifying may wait on the network (a JWKS fetch): run it off the event loop."""
        return self.keys.remote

    def verify(self, token: str) -> Principal:
        """The caller `token` proves; AuthError with one line saying why it is refused."""
        token = token.strip()
        if not token:
            raise AuthError("empty token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise AuthError(f"algorithm {str(alg)[:16]!r} not accepted")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed token")
        key = self.keys.key_for(kid)
        if alg not in algorithms_for(key):
            raise AuthError(f"algorithm {alg} does not match the key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"missing claim {exc.claim}") from None
        except jwt.PyJWTError as exc:
            reason = next((r for kind, r in _REASONS if isinstance(exc, kind)), "invalid token")
            raise AuthError(reason) from None
        return principal_from_claims(claims, self.claims, self.caps)
