"""Who is asking: the verified identity every boundary (HTTP, command line) decides on."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.agreements.model import Tier

__all__ = ["TIERS", "Principal", "Tier", "tier_rank"]

TIERS: tuple[Tier, ...] = ("aggregate", "area", "individual")


def tier_rank(tier: Tier) -> int:
    """0 for aggregate, 1 for area, 2 for individual: a higher tier sees everything a lower one does."""
    return TIERS.index(tier)


@dataclass(frozen=True)
class Principal:
    """A caller whose token was verified; built only by `TokenVerifier` (or tests).

    `recipient` and `tier` come from verified claims and the tier never exceeds the recipient's cap
    in `recipients.yaml`; `partner` names a data-owning partner the caller acts for; `roles` are
    the caller's roles (e.g. `ops` for /metrics and /ready).
    """

    subject: str
    recipient: str | None = None
    tier: Tier | None = None
    partner: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    def reaches(self, tier: Tier) -> bool:
        """True when this caller's tier is `tier` or higher (no tier reaches nothing)."""
        return self.tier is not None and tier_rank(self.tier) >= tier_rank(tier)

    def has_role(self, role: str) -> bool:
        return role in self.roles
