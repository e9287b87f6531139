"""Verified claims -> `Principal`, with configurable claim names (each IdP names them its own way).

Names may be dotted paths into nested claims, e.g. Keycloak's `realm_access.roles`; Entra ID's app
roles are a plain `roles` list. Roles may be a list or a space-separated string (`scope` style).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.identity.errors import AuthError
from streams.identity.principal import TIERS, Principal, Tier
from streams.identity.recipients import RecipientCaps
from streams.settings import Settings

__all__ = ["ClaimNames", "principal_from_claims"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ClaimNames:
    recipient: str = "recipient"
    tier: str = "tier"
    partner: str = "partner"
    roles: str = "roles"

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimNames:
        return cls(
            settings.auth_recipient_claim,
            settings.auth_tier_claim,
            settings.auth_partner_claim,
            settings.auth_roles_claim,
        )


def _lookup(claims: Mapping[str, Any], name: str) -> Any:
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _name(claims: Mapping[str, Any], claim: str) -> str | None:
    value = _lookup(claims, claim)
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise AuthError(f"invalid claim {claim}: expected a lower-case name")
    return value


def _roles(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    value = _lookup(claims, claim)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        raise AuthError(f"invalid claim {claim}: expected a list of role names")
    return frozenset(value)


def principal_from_claims(claims: Mapping[str, Any], names: ClaimNames, caps: RecipientCaps) -> Principal:
    """The caller the claims describe; AuthError (one line) for a missing or invalid claim."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise AuthError("missing claim sub")
    recipient = _name(claims, names.recipient)
    raw_tier = _lookup(claims, names.tier)
    if raw_tier is not None and raw_tier not in TIERS:
        raise AuthError(f"invalid claim {names.tier}: expected one of {', '.join(TIERS)}")
    tier: Tier | None = raw_tier
    if tier is not None and recipient is None:
        raise AuthError(f"claim {names.tier} needs a {names.recipient} claim (the recipient caps the tier)")
    if recipient is not None:
        caps.check(recipient, tier)
    return Principal(
        subject=subject,
        recipient=recipient,
        tier=tier,
        partner=_name(claims, names.partner),
        roles=_roles(claims, names.roles),
    )
