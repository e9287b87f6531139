"""Who may act for a partner on a person's identity: the rights roles file (`SHARINGBUS_RIGHTS_ROLES_PATH`).

A verified token says who the caller is; it never says, by itself, that the caller may see
identifiers. The VRU's file does, per partner:

- `data_owners`: identities (the token's `sub`) that may request re-identification of the
  partner's own identifiers and approve another owner's request. Dual control needs two different
  owners, so a partner lists none or at least two.
- `officers`: identities that may answer subject access requests for the partner (as controller).

A token that names a partner (the partner claim) must name the same partner it is used for, so an
identity listed by two partners acts for the one its identity provider says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from streams.agreements.loader import Issue, _read_yaml, _validation_issues
from streams.errors import ConfigurationError, SharingBusError
from streams.identity.principal import Principal

__all__ = ["Duty", "NotAuthorised", "PartnerRoles", "RightsRoles", "load_roles"]

Duty = Literal["data_owner", "officer"]
Subject = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:+/=-]{0,199}$")]
PartnerId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class NotAuthorised(SharingBusError):
    """The verified caller holds no such duty for that partner; the message is one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartnerRoles(_Strict):
    data_owners: tuple[Subject, ...] = ()
    officers: tuple[Subject, ...] = ()

    @field_validator("data_owners", "officers")
    @classmethod
    def _once_each(cls, people: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(people)) != len(people):
            raise ValueError("an identity is listed twice")
        return people

    @field_validator("data_owners")
    @classmethod
    def _dual_control(cls, people: tuple[str, ...]) -> tuple[str, ...]:
        if len(people) == 1:
            raise ValueError("dual control needs none or at least two data owners")
        return people


class RolesFile(_Strict):
    partners: dict[PartnerId, PartnerRoles] = Field(min_length=1)


@dataclass(frozen=True)
class RightsRoles:
    """The loaded file: partner -> its data owners and officers."""

    path: Path
    partners: Mapping[str, PartnerRoles]

    def people(self, partner: str, duty: Duty) -> tuple[str, ...]:
        roles = self.partners.get(partner)
        if roles is None:
            return ()
        return roles.data_owners if duty == "data_owner" else roles.officers

    def partners_of(self, subject: str, duty: Duty) -> list[str]:
        """The partners for which `subject` holds `duty`, in file order."""
        return [p for p in self.partners if subject in self.people(p, duty)]

    def authorise(self, principal: Principal, partner: str, duty: Duty) -> None:
        """NotAuthorised unless the file gives `principal` this duty for `partner`."""
        what = "a data owner" if duty == "data_owner" else "an officer"
        if principal.partner is not None and principal.partner != partner:
            raise NotAuthorised(f"{principal.subject} acts for {principal.partner}, not {partner}")
        if principal.subject not in self.people(partner, duty):
            raise NotAuthorised(f"{principal.subject} is not {what} of {partner} ({self.path.name})")

    def partner_for(self, principal: Principal, partner: str | None, duty: Duty) -> str:
        """The partner a request is for: the one given, else the token's, else the caller's only one."""
        if partner:
            return partner
        if principal.partner:
            return principal.partner
        held = self.partners_of(principal.subject, duty)
        if len(held) == 1:
            return held[0]
        raise NotAuthorised(
            f"{principal.subject} is not {'a data owner' if duty == 'data_owner' else 'an officer'} "
            "of exactly one partner: name the partner"
        )


def load_roles(path: Path, known_partners: Iterable[str] | None = None) -> RightsRoles:
    """The roles file, validated; ConfigurationError naming the first problem (`<file>: <key>: <why>`)."""
    issues: list[Issue] = []
    if not path.exists():
        raise ConfigurationError(
            f"{path}: missing: the rights roles file naming each partner's data owners and officers "
            "(SHARINGBUS_RIGHTS_ROLES_PATH)"
        )
    raw, _ = _read_yaml(path, issues)
    if raw is None and not issues:
        issues.append(Issue(path, "", "empty file"))
    parsed: RolesFile | None = None
    if not issues:
        try:
            parsed = RolesFile.model_validate(raw)
        except pydantic.ValidationError as exc:
            issues += _validation_issues(path, exc)
    if parsed is not None and known_partners is not None:
        known = set(known_partners)
        issues += [
            Issue(path, f"partners.{p}", "unknown partner (not in the schema catalogue)")
            for p in parsed.partners
            if p not in known
        ]
    if issues or parsed is None:
        raise ConfigurationError(str(issues[0]))
    return RightsRoles(path, parsed.partners)
