"""What an agreement file may say, as pydantic models: the structural half of validation.

Everything that needs the schema catalogue or the operators (fields exist, params fit, tiers) is
checked in `checks.py`; these models only make sure the YAML has the right shape, so their errors
can name the offending key precisely.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

Tier = Literal["aggregate", "area", "individual"]

# Codes an agreement may cite, with the label shown to people (explain, audit reports).
LAWFUL_BASES: dict[str, str] = {
    "pcsc_2022_s16": "Police, Crime, Sentencing and Courts Act 2022 s.16 (Serious Violence Duty disclosure)",
    "cda_1998_s115": "Crime and Disorder Act 1998 s.115 (power to disclose for crime and disorder purposes)",
    "cda_1998_s17a": "Crime and Disorder Act 1998 s.17A (duty to share depersonalised information)",
    "uk_gdpr_6_1_e": "UK GDPR Art 6(1)(e) (public task)",
    "uk_gdpr_6_1_c": "UK GDPR Art 6(1)(c) (legal obligation)",
    "uk_gdpr_9_2_g": "UK GDPR Art 9(2)(g) (substantial public interest)",
    "dpa_2018_sch1_para6": "DPA 2018 Sch 1 para 6 (statutory and government purposes)",
    "dpa_2018_sch1_para10": "DPA 2018 Sch 1 para 10 (preventing or detecting unlawful acts)",
    "dpa_2018_sch1_para18": "DPA 2018 Sch 1 para 18 (safeguarding of children and individuals at risk)",
    "dpa_2018_part3": "DPA 2018 Part 3 (law enforcement processing)",
    "consent": "Consent of the data subject",
}
# Art 9 / Art 10 conditions: what `special_category_basis` must be drawn from.
SPECIAL_CATEGORY_BASES = frozenset(
    {"uk_gdpr_9_2_g", "dpa_2018_sch1_para6", "dpa_2018_sch1_para10", "dpa_2018_sch1_para18"}
)
# A statutory gateway (s.16, s.115) permits disclosure but is not itself a basis for processing.
PROCESSING_BASES = frozenset({"uk_gdpr_6_1_e", "uk_gdpr_6_1_c", "dpa_2018_part3", "consent"})
# Views a recipient may be given instead of (or besides) events, with the lowest tier allowed.
VIEWS: dict[str, Tier] = {"area_counts": "aggregate", "person_profile": "individual"}
PERSON_VIEW = "person_profile"
AREA_VIEW = "area_counts"
# How precisely a view may say WHEN something happened (first/last seen, the time of each fact):
# a time is a quasi-identifier like any other field, and two recipients holding the same exact
# instants could join their data through them. Per tier unless a view grant says otherwise.
TimeUnit = Literal["day", "week", "month"]
TIME_UNITS: tuple[TimeUnit, ...] = ("day", "week", "month")
DEFAULT_TIME_UNIT: dict[Tier, TimeUnit] = {"individual": "day", "area": "month", "aggregate": "month"}

_ID = r"^[a-z][a-z0-9_]*$"
_DOMAIN = re.compile(r"^(recipient|purpose:[a-z][a-z0-9_]*)$")
# A Kafka principal: `User:` then a SASL user or a certificate's DN of letters, digits and
# . _ - @ = , + : never "*" (Kafka's wildcard, which would grant a share to everyone), nor a space,
# quote or shell metacharacter (the ACL plan is printed as commands).
PRINCIPAL = re.compile(r"User:[A-Za-z0-9][A-Za-z0-9._@=,+-]{0,199}")
PRINCIPAL_RULE = "must be 'User:' and a name of letters, digits and . _ - @ = , + (no wildcard)"


def check_principal(value: str) -> str:
    """`value` when it is a safe Kafka principal; ValueError saying PRINCIPAL_RULE otherwise."""
    if not isinstance(value, str) or not PRINCIPAL.fullmatch(value):
        raise ValueError(PRINCIPAL_RULE)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Recipient(_Strict):
    """Someone who receives shared data; the tier caps what any agreement may give them."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    organisation: str = Field(min_length=1)
    tier: Tier
    principal: str | None = None  # the Kafka principal it reads as (default User:recipient.<id>)

    @field_validator("principal")
    @classmethod
    def _principal(cls, v: str | None) -> str | None:
        return None if v is None else check_principal(v)


class RecipientsFile(_Strict):
    recipients: list[Recipient] = Field(min_length=1)


class Treatment(_Strict):
    """An operator name and its raw params, from `keep` or `{pseudonymise: {identifier: upn}}`.

    Params stay a plain mapping here; the operator's own params model validates them when the
    agreement is checked against the catalogue.
    """

    operator: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"operator": raw, "params": {}}
        if isinstance(raw, Treatment) or (isinstance(raw, dict) and "operator" in raw):
            return raw
        if isinstance(raw, dict) and len(raw) == 1 and "operator" not in raw:
            ((name, params),) = raw.items()
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ValueError(f"parameters of {name!r} must be a mapping, e.g. {{{name}: {{...}}}}")
            return {"operator": name, "params": params}
        raise ValueError("expected an operator name (keep, drop, ...) or {operator: {params}}")

    def __str__(self) -> str:
        if not self.params:
            return self.operator
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.operator}({args})"


class Condition(_Strict):
    """One row condition: `{field, in|not_in|equals|age_under}` or `{any_of: [...]}`."""

    field: str | None = None
    in_: list[Any] | None = Field(None, alias="in", min_length=1)
    not_in: list[Any] | None = Field(None, min_length=1)
    equals: Any = None
    age_under: int | None = Field(None, gt=0, le=130)
    any_of: list[Condition] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [t for t in ("in_", "not_in", "equals", "age_under") if t in self.model_fields_set]
        if self.any_of is not None:
            if self.field is not None or tests:
                raise ValueError("any_of stands alone (no field or test beside it)")
            return self
        if self.field is None:
            raise ValueError("needs 'field' with one of in, not_in, equals, age_under (or any_of)")
        if len(tests) != 1:
            raise ValueError("give exactly one of in, not_in, equals, age_under")
        return self

    @property
    def test(self) -> str:
        """The test's name as written in YAML ("in", "not_in", "equals", "age_under")."""
        for name in ("in_", "not_in", "equals", "age_under"):
            if name in self.model_fields_set:
                return "in" if name == "in_" else name
        return "any_of"

    @property
    def operand(self) -> Any:
        return getattr(self, "in_" if self.test == "in" else self.test)

    def describe(self) -> str:
        """Human form for reasons and explain, e.g. "crime_category in [ROBBERY, DRUGS]"."""
        if self.any_of is not None:
            return "any of (" + "; ".join(c.describe() for c in self.any_of) + ")"
        operand = self.operand
        text = (
            "[" + ", ".join(map(_yaml_text, operand)) + "]"
            if isinstance(operand, list)
            else _yaml_text(operand)
        )
        return f"{self.field} {self.test.replace('_', ' ')} {text}"


def _yaml_text(value: Any) -> str:
    """A scalar as YAML would show it (true, null), so reasons read like the agreement."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


class EventTypeRule(_Strict):
    """What one event type yields for the recipient: row conditions and per-field treatments."""

    where: list[Condition] = Field(default_factory=list)
    fields: dict[str, Treatment] = Field(default_factory=dict)


class ViewSource(_Strict):
    """Which facts of one event type may combine into the view; `factors` None means all of them."""

    factors: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, raw: Any) -> Any:
        return {} if raw is None else raw


class ViewGrant(_Strict):
    """One view of combined facts for the agreement's recipient, under the agreement's purpose and bases.

    For `person_profile`, `event_types` names the event types (of this agreement, from its owners)
    whose facts may combine into the recipient's person view; a fact flows only from an event the
    agreement shared with the recipient. `area_counts` takes every event type of the owners (its
    output is suppressed counts). `times` coarsens every time the view holds (default: per tier).
    """

    event_types: dict[str, ViewSource] = Field(default_factory=dict)
    times: TimeUnit | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, raw: Any) -> Any:
        return {} if raw is None else raw


class Agreement(_Strict):
    """One sharing agreement (one YAML file); `file` and `digest` are set by the loader."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str
    title: str = Field(min_length=1)
    owners: list[str] = Field(min_length=1)
    recipient: str
    purpose: str = Field(min_length=1)
    lawful_basis: list[str] = Field(min_length=1)
    special_category_basis: list[str] = Field(default_factory=list)
    review_date: date
    expires: date | None = None  # last day of sharing, when the agreement is made for a fixed term
    retention_days: int = Field(gt=0)
    pseudonym_domain: str = "recipient"
    # Recipients of other agreements whose tokens may share this agreement's purpose domain(s): a
    # joint use both agreements must declare (streams.agreements.domains), or the check refuses it.
    joint_domain_with: list[str] = Field(default_factory=list)
    on_invalid_identifier: Literal["withhold_field", "deny_event"] = "withhold_field"
    event_types: dict[str, EventTypeRule] = Field(default_factory=dict)
    views: dict[str, ViewGrant] = Field(default_factory=dict)

    _file: Path = PrivateAttr(default=Path("<memory>"))
    _digest: str = PrivateAttr(default="")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        if isinstance(v, bool | float):
            raise ValueError('must be a string or an integer (quote it, e.g. "1.0")')
        return str(v) if isinstance(v, int) else v

    @field_validator("views", mode="before")
    @classmethod
    def _view_list(cls, v: Any) -> Any:
        """`views: [area_counts]` is short for `views: {area_counts: {}}`."""
        if isinstance(v, list):
            if not all(isinstance(name, str) for name in v):
                raise ValueError("a list of views holds view names only, e.g. [area_counts]")
            if len(set(v)) != len(v):
                raise ValueError("a view is listed twice")
            return {name: {} for name in v}
        return v

    @field_validator("joint_domain_with")
    @classmethod
    def _joint_ids(cls, v: list[str]) -> list[str]:
        for rid in v:
            if not re.fullmatch(_ID, rid):
                raise ValueError(f"{rid!r} is not a recipient id (lower-case letters, digits, _)")
        if len(set(v)) != len(v):
            raise ValueError("a recipient is listed twice")
        return v

    @field_validator("pseudonym_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not _DOMAIN.match(v):
            raise ValueError("must be 'recipient' or 'purpose:<name>' (lower-case, digits, _)")
        return v

    @property
    def file(self) -> Path:
        return self._file

    @property
    def digest(self) -> str:
        """sha256 of the file's bytes: part of every plan version compiled from it."""
        return self._digest

    @property
    def domain(self) -> str:
        """The pseudonym domain tokens are computed in, e.g. "recipient:vru_analysts"."""
        if self.pseudonym_domain == "recipient":
            return f"recipient:{self.recipient}"
        return self.pseudonym_domain
