"""Compile the agreements' `views` sections: which facts may combine into which recipient's view.

Combining facts about one person from several partners is processing in its own right (DPO control
8): a profile that joins police and social-care facts says more than either partner disclosed. So a
fact reaches a view only through a grant in an agreement: for a person view, the event type must be
named in the recipient's grant AND the event itself must have been shared with that recipient under
the same agreement (its row conditions, purpose and bases govern the fact as they govern the event).
Everything else is denied. Compiled once per plan set; the enforcer looks grants up by
(event type, partner) and never reads YAML per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.agreements.model import (
    AREA_VIEW,
    DEFAULT_TIME_UNIT,
    PERSON_VIEW,
    Agreement,
    Recipient,
    TimeUnit,
    ViewGrant,
)
from streams.avro.catalogue import Catalogue

__all__ = ["AreaSource", "ProfileSource", "ViewPlans", "compile_views"]


@dataclass(frozen=True)
class ProfileSource:
    """Facts of `event_type` from `owners` may join `recipient`'s person view (`factors` None: all)."""

    recipient: str
    agreement_id: str
    agreement_version: str
    event_type: str
    owners: frozenset[str]
    factors: frozenset[str] | None
    time_unit: TimeUnit


@dataclass(frozen=True)
class AreaSource:
    """Facts from `owners` may be counted in `recipient`'s area counts (`event_types` None: all)."""

    recipient: str
    agreement_id: str
    agreement_version: str
    owners: frozenset[str]
    event_types: frozenset[str] | None
    time_unit: TimeUnit


class ViewPlans:
    """Every view grant, by (event type, partner); `readers(view)` for topic ACLs."""

    def __init__(self, profile: Sequence[ProfileSource] = (), area: Sequence[AreaSource] = ()) -> None:
        self.profile: tuple[ProfileSource, ...] = tuple(profile)
        self.area: tuple[AreaSource, ...] = tuple(area)
        by_key: dict[tuple[str, str], list[ProfileSource]] = {}
        for source in self.profile:
            for owner in source.owners:
                by_key.setdefault((source.event_type, owner), []).append(source)
        self._profile = {k: tuple(v) for k, v in by_key.items()}
        self._area: dict[tuple[str, str], tuple[AreaSource, ...]] = {}
        self.profile_recipients: tuple[str, ...] = tuple(sorted({s.recipient for s in self.profile}))

    def profile_sources(self, event_type: str, partner: str) -> tuple[ProfileSource, ...]:
        return self._profile.get((event_type, partner), ())

    def area_sources(self, event_type: str, partner: str) -> tuple[AreaSource, ...]:
        key = (event_type, partner)
        hit = self._area.get(key)
        if hit is None:
            hit = self._area[key] = tuple(
                s
                for s in self.area
                if partner in s.owners and (s.event_types is None or event_type in s.event_types)
            )
        return hit

    def readers(self, view: str) -> frozenset[str]:
        """Recipients granted `view` by some agreement (whoever else reads its topic is refused)."""
        sources: Iterable[ProfileSource | AreaSource] = self.profile if view == PERSON_VIEW else self.area
        return frozenset(s.recipient for s in sources)

    def __repr__(self) -> str:
        return f"ViewPlans(profile={len(self.profile)}, area={len(self.area)})"


def compile_views(
    agreements: Iterable[Agreement], recipients: Mapping[str, Recipient], catalogue: Catalogue
) -> ViewPlans:
    """The grants of checked agreements (`check_agreement` has refused anything inconsistent)."""
    profile: list[ProfileSource] = []
    area: list[AreaSource] = []
    for agreement in agreements:
        recipient = recipients[agreement.recipient]
        for view, grant in agreement.views.items():
            unit = grant.times or DEFAULT_TIME_UNIT[recipient.tier]
            if view == PERSON_VIEW:
                profile += _profile_sources(agreement, grant, unit, catalogue)
            elif view == AREA_VIEW:
                area.append(
                    AreaSource(
                        agreement.recipient,
                        agreement.id,
                        agreement.version,
                        frozenset(agreement.owners),
                        frozenset(grant.event_types) if grant.event_types else None,
                        unit,
                    )
                )
    return ViewPlans(profile, area)


def _profile_sources(
    agreement: Agreement, grant: ViewGrant, unit: TimeUnit, catalogue: Catalogue
) -> list[ProfileSource]:
    out = []
    for et_name, source in grant.event_types.items():
        if et_name not in agreement.event_types:
            continue  # refused by the checks; never a grant
        owners = frozenset(
            o
            for o in agreement.owners
            if o in catalogue.partners and et_name in catalogue.partners[o].event_types
        )
        factors = frozenset(source.factors) if source.factors is not None else None
        out.append(
            ProfileSource(
                agreement.recipient, agreement.id, agreement.version, et_name, owners, factors, unit
            )
        )
    return out
