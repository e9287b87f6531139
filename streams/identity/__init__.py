"""Who is asking: verified bearer tokens (OIDC/JWT) turned into a `Principal`.

`TokenVerifier.from_settings(settings).verify(token)` is the one way a boundary (the HTTP API and
dashboard, the command line) learns its caller; `LocalIssuer` is the embedded default's issuer.
"""

from streams.identity.errors import AuthError
from streams.identity.issuer import LocalIssuer
from streams.identity.principal import TIERS, Principal, Tier, tier_rank
from streams.identity.verifier import TokenVerifier

__all__ = ["TIERS", "AuthError", "LocalIssuer", "Principal", "Tier", "TokenVerifier", "tier_rank"]
