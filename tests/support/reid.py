"""Real identities for re-identification tests: the embedded issuer (its key in a test directory),
the bus's own verifier, and a rights roles file, so every test goes through dual control as a
deployment does."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from streams.identity import LocalIssuer, TokenVerifier
from streams.privacy.vault_access import Identity, VaultAccess
from streams.rights.reidentify import DualControl
from streams.rights.roles import PartnerRoles, RightsRoles
from streams.settings import Settings

WHY = "Safeguarding referral 2026/0142: confirm identity before strategy meeting"


def owners_of(*partners: str) -> dict[str, PartnerRoles]:
    """Two data owners and one officer per partner: `<partner>.owner.a`, `.owner.b`, `.officer`."""
    return {
        p: PartnerRoles(data_owners=(f"{p}.owner.a", f"{p}.owner.b"), officers=(f"{p}.officer",))
        for p in partners
    }


def as_caller(settings: Settings, subject: str, partner: str | None = None) -> Settings:
    """`settings` whose command line presents a token of `subject` (SHARINGBUS_IDENTITY_TOKEN)."""
    token = LocalIssuer.from_settings(settings).mint(subject, partner=partner)
    return settings.model_copy(update={"identity_token": SecretStr(token)})


class Identities:
    def __init__(self, where: Path | Settings, partners: dict[str, PartnerRoles]) -> None:
        self.settings = where if isinstance(where, Settings) else Settings(data_dir=where)
        self.issuer = LocalIssuer.from_settings(self.settings)
        self.verifier = TokenVerifier.from_settings(self.settings)
        self.roles = RightsRoles(self.settings.data_dir / "rights-roles.yaml", partners)

    def token(self, subject: str, *, partner: str | None = None, ttl: int | None = None) -> str:
        return self.issuer.mint(subject, partner=partner, ttl_seconds=ttl)

    def service(self, dsn: str) -> DualControl:
        return DualControl(VaultAccess(dsn), self.roles, self.verifier.verify)

    def reidentify(self, dsn: str, token: str, partner: str, justification: str = WHY) -> list[Identity]:
        """Request (first owner), approve (second owner), answer (first owner)."""
        first, second = self.roles.people(partner, "data_owner")[:2]
        service = self.service(dsn)
        request_id = service.request(self.token(first), token, partner, justification)
        service.approve(self.token(second), request_id)
        return service.answer(self.token(first), request_id)
