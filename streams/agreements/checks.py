"""Checks of one agreement against the catalogue, the recipients and the law: the DPO's controls.

Each problem names the YAML key it is about (`event_types.police.crime_recorded.fields.x`), so
`sharebus agreements check` can print `<file>: <key>: <message>` for every one of them at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from streams.agreements.conditions import check_conditions
from streams.agreements.model import (
    LAWFUL_BASES,
    PERSON_VIEW,
    PROCESSING_BASES,
    SPECIAL_CATEGORY_BASES,
    VIEWS,
    Agreement,
    Recipient,
    Tier,
    ViewGrant,
)
from streams.agreements.selection import FieldRule, Selection, select_fields
from streams.agreements.tree import Node, event_tree, leaves, walk
from streams.avro.catalogue import Catalogue
from streams.avro.formats import is_free_text
from streams.privacy.operators.base import avro_kind

__all__ = ["GENERALISING", "check_agreement", "free_text_kept", "lapse", "select_for"]

GENERALISING = frozenset({"age_band", "truncate_date", "postcode_district", "area_lookup", "round", "band"})
# Tags that make released data person-level (an identifier or a name; a postcode alone is not).
PERSON_TAGS = frozenset(
    {
        "pii:direct",
        *(f"identifier:{k}" for k in ("nhs_number", "upn", "pnc_id", "local_id", "name", "date_of_birth")),
    }
)
SENSITIVE_SECTORS = frozenset({"health", "social_care"})  # PCSC 2022 s.16(4)
_GATEWAYS_BESIDES_S16 = frozenset({"cda_1998_s115", "cda_1998_s17a"})
_TIER_RANK: dict[Tier, int] = {"aggregate": 0, "area": 1, "individual": 2}
REVIEW_WARNING_DAYS = 30
_TIMES = frozenset({"date", "timestamp-millis", "timestamp-micros"})
_FACTOR = re.compile(r"^[a-z][a-z0-9_]*$")
# What envelope times are truncated to unless an agreement says otherwise (time to the second is a
# join key between recipients and, with an area, often identifies the event and so the person).
ENVELOPE_TIME_UNIT: dict[Tier, str] = {"individual": "day", "area": "month", "aggregate": "month"}


@dataclass(frozen=True)
class Finding:
    """A problem with its severity; `key` is the full dotted YAML key."""

    key: str
    message: str
    severity: str = "error"


def select_for(
    agreement: Agreement, event_type: str, catalogue: Catalogue, tier: Tier | None = None
) -> tuple[tuple[Node, ...], Selection]:
    """The field tree and resolved field rules of one event type under `agreement`, for a
    recipient of `tier` (None: unknown, envelope times as for the coarsest tier)."""
    tree = event_tree(catalogue.event_types[event_type])
    unit = ENVELOPE_TIME_UNIT[tier] if tier is not None else "month"
    return tree, select_fields(tree, agreement.event_types[event_type], event_type, time_unit=unit)


def check_agreement(
    agreement: Agreement, recipients: Mapping[str, Recipient], catalogue: Catalogue, today: date
) -> list[Finding]:
    """Every problem with `agreement` (empty when it may be compiled and enforced)."""
    out: list[Finding] = []
    recipient = recipients.get(agreement.recipient)
    if recipient is None:
        known = ", ".join(sorted(recipients)) or "none"
        out.append(
            Finding("recipient", f"unknown recipient {agreement.recipient!r} (recipients.yaml has {known})")
        )
    _check_parties(agreement, catalogue, out)
    _check_bases(agreement, out)
    _check_review(agreement, today, out)
    if recipient is not None:
        _check_views(agreement, recipient, catalogue, out)
    needs_special: list[str] = []
    sensitive_person_data = False
    for et_name in agreement.event_types:
        key = f"event_types.{et_name}"
        if et_name not in catalogue.event_types:
            out.append(Finding(key, f"unknown event type {et_name} (not in the schema catalogue)"))
            continue
        publishers = {o for o in agreement.owners if et_name in _published(catalogue, o)}
        if not publishers:
            who = ", ".join(catalogue.partners_for(et_name)) or "nobody"
            out.append(Finding(key, f"no owner publishes {et_name} (published by {who})"))
        tree, selection = select_for(agreement, et_name, catalogue, recipient.tier if recipient else None)
        nodes = {n.path: n for n in walk(tree)}
        problems = [
            *selection.problems,
            *check_conditions(agreement.event_types[et_name].where, nodes, "where"),
        ]
        out += [Finding(f"{key}.{p.key}", p.message) for p in problems]
        if recipient is not None:
            out += _check_tier(agreement, recipient, et_name, tree, selection.rules)
            reasons, sensitive = _special_needs(
                recipient.tier, et_name, publishers, tree, selection.rules, catalogue
            )
            needs_special += reasons
            sensitive_person_data |= sensitive
    if needs_special and not agreement.special_category_basis:
        out.append(Finding("special_category_basis", "required: " + "; ".join(needs_special)))
    bases = set(agreement.lawful_basis)
    if sensitive_person_data and "pcsc_2022_s16" in bases and not bases & _GATEWAYS_BESIDES_S16:
        out.append(
            Finding(
                "lawful_basis",
                "pcsc_2022_s16 never covers personal information from health or social care bodies "
                "(s.16(4)): cite another gateway such as cda_1998_s115",
            )
        )
    return out


def _published(catalogue: Catalogue, owner: str) -> frozenset[str]:
    partner = catalogue.partners.get(owner)
    return partner.event_types if partner is not None else frozenset()


def _check_parties(agreement: Agreement, catalogue: Catalogue, out: list[Finding]) -> None:
    for i, owner in enumerate(agreement.owners):
        key = f"owners[{i}]"
        if owner not in catalogue.partners:
            out.append(Finding(key, f"unknown partner {owner!r} (not in schemas/partners.yaml)"))
        elif agreement.event_types and not _published(catalogue, owner) & set(agreement.event_types):
            out.append(Finding(key, f"{owner} publishes none of this agreement's event types"))
        if agreement.owners.index(owner) != i:
            out.append(Finding(key, f"{owner} is listed twice"))


def _check_bases(agreement: Agreement, out: list[Finding]) -> None:
    for i, code in enumerate(agreement.lawful_basis):
        if code not in LAWFUL_BASES:
            out.append(
                Finding(
                    f"lawful_basis[{i}]", f"unknown lawful basis {code!r} (known: {', '.join(LAWFUL_BASES)})"
                )
            )
    if not set(agreement.lawful_basis) & PROCESSING_BASES:
        out.append(
            Finding(
                "lawful_basis",
                "needs a basis for processing (uk_gdpr_6_1_e, uk_gdpr_6_1_c, dpa_2018_part3 or consent): "
                "a disclosure gateway alone is not one",
            )
        )
    for i, code in enumerate(agreement.special_category_basis):
        if code not in SPECIAL_CATEGORY_BASES:
            known = ", ".join(sorted(SPECIAL_CATEGORY_BASES))
            out.append(
                Finding(f"special_category_basis[{i}]", f"{code!r} is not an Art 9/10 condition ({known})")
            )


def lapse(agreement: Agreement, today: date) -> tuple[str, str] | None:
    """(key, reason) when `agreement` may no longer be enforced on `today`: its review date or its
    expiry has passed. A lapsed agreement stops its own flows only (the loader sets it aside and its
    plans deny every event with this reason); it is not an error in the file."""
    if agreement.expires is not None and today > agreement.expires:
        return "expires", f"expired on {agreement.expires}: nothing is shared under it"
    if today > agreement.review_date:
        return "review_date", (
            f"review date {agreement.review_date} has passed: nothing is shared under it until it is reviewed"
        )
    return None


def _check_review(agreement: Agreement, today: date, out: list[Finding]) -> None:
    """Warnings ahead of a lapse (the lapse itself is `lapse`, judged by the loader every day)."""
    for key, day in (("review_date", agreement.review_date), ("expires", agreement.expires)):
        days = (day - today).days if day is not None else -1
        if 0 <= days <= REVIEW_WARNING_DAYS:
            what = "review due" if key == "review_date" else "expires"
            out.append(Finding(key, f"{what} in {days} days ({day})", "warning"))


def _check_views(
    agreement: Agreement, recipient: Recipient, catalogue: Catalogue, out: list[Finding]
) -> None:
    for view, grant in agreement.views.items():
        needed = VIEWS.get(view)
        key = f"views.{view}"
        if needed is None:
            out.append(Finding(key, f"unknown view {view!r} (known: {', '.join(VIEWS)})"))
            continue
        if _TIER_RANK[recipient.tier] < _TIER_RANK[needed]:
            out.append(
                Finding(key, f"{view} needs an {needed}-tier recipient; {recipient.id} is {recipient.tier}")
            )
        if view == PERSON_VIEW:
            _check_person_view(agreement, grant, catalogue, out)
        for et_name in grant.event_types:
            if et_name not in agreement.event_types and view == PERSON_VIEW:
                continue  # reported by _check_person_view
            if not {o for o in agreement.owners if et_name in _published(catalogue, o)}:
                out.append(
                    Finding(f"{key}.event_types.{et_name}", f"no owner of this agreement publishes {et_name}")
                )
    if recipient.tier == "aggregate" and agreement.event_types:
        out.append(
            Finding(
                "event_types", f"{recipient.id} is an aggregate-tier recipient: it gets views only, no events"
            )
        )
    if not agreement.event_types and not agreement.views:
        out.append(Finding("event_types", "the agreement shares nothing: give event_types or views"))


def _check_person_view(
    agreement: Agreement, grant: ViewGrant, catalogue: Catalogue, out: list[Finding]
) -> None:
    """Combination is disclosure: a fact joins a person view only from an event the agreement shares
    with the recipient, so the event's purpose, bases and row conditions govern its facts too; health
    and social care facts (s.16(4)) need the agreement's own Art 9 condition besides."""
    key = f"views.{PERSON_VIEW}"
    if not grant.event_types:
        out.append(
            Finding(f"{key}.event_types", "name the event types whose facts may combine into the person view")
        )
    for et_name, source in grant.event_types.items():
        et_key = f"{key}.event_types.{et_name}"
        if et_name not in agreement.event_types:
            out.append(
                Finding(
                    et_key,
                    f"{et_name} is not shared by this agreement: facts combine only from events the "
                    f"agreement shares with {agreement.recipient}",
                )
            )
            continue
        sectors = sorted(
            {
                catalogue.partners[o].sector
                for o in agreement.owners
                if et_name in _published(catalogue, o) and catalogue.partners[o].sector in SENSITIVE_SECTORS
            }
        )
        if sectors and not agreement.special_category_basis:
            out.append(
                Finding(
                    et_key,
                    f"facts from a {', '.join(sectors)} partner need the agreement's own "
                    "special_category_basis (Art 9 condition; PCSC 2022 s.16(4) excludes them)",
                )
            )
        for i, factor in enumerate(source.factors or ()):
            if not _FACTOR.match(factor):
                out.append(Finding(f"{et_key}.factors[{i}]", f"{factor!r} is not a factor name"))


def _check_tier(
    agreement: Agreement,
    recipient: Recipient,
    et_name: str,
    tree: tuple[Node, ...],
    rules: Mapping[str, FieldRule],
) -> list[Finding]:
    """Free text never leaves; direct identifiers never kept; area tier: generalised quasi only."""
    out = []
    for leaf in leaves(tree):
        rule = rules.get(leaf.path)
        if rule is None or not rule.released or rule.via == "envelope":
            continue
        key = f"event_types.{et_name}.fields.{rule.selector}"
        op, tags, where = rule.operator, leaf.tags, f"{leaf.path}: "
        domain = getattr(rule.params, "domain", None) if op == "pseudonymise" else None
        if domain and domain != agreement.domain and not domain.startswith("purpose:"):
            out.append(
                Finding(key, f"{where}tokens in domain {domain} would let another recipient join this data")
            )
        if "pii:free_text" in tags and op != "redact":
            out.append(Finding(key, f"{where}free text is never released (drop or redact it)"))
        elif "pii:direct" in tags and recipient.tier == "area" and op != "redact":
            out.append(
                Finding(
                    key,
                    f"{where}{recipient.id} is an area-tier recipient: "
                    "no direct identifiers, even pseudonymised",
                )
            )
        elif "pii:direct" in tags and op == "keep":
            out.append(
                Finding(key, f"{where}a direct identifier is never released as is (pseudonymise or drop it)")
            )
        elif "pii:quasi" in tags and recipient.tier == "area" and op not in GENERALISING | {"redact"}:
            out.append(
                Finding(
                    key,
                    f"{where}{recipient.id} is an area-tier recipient: quasi-identifiers must be generalised "
                    f"({', '.join(sorted(GENERALISING))}) or dropped, not {op}",
                )
            )
        elif op == "keep" and is_free_text(leaf.avro_type, leaf.field):
            out.append(Finding(key, f"{where}{FREE_TEXT}"))
        elif op == "keep" and recipient.tier == "area" and avro_kind(leaf.avro_type) in _TIMES:
            out.append(
                Finding(
                    key,
                    f"{where}{recipient.id} is an area-tier recipient: dates and times are generalised "
                    "(truncate_date) or dropped, like the envelope's",
                )
            )
    return out


FREE_TEXT = (
    "a string with no enum and no validated format counts as free text and is never released as is: "
    "drop, redact or transform it, or declare a format for the field in its schema"
)


def free_text_kept(tree: tuple[Node, ...], rules: Mapping[str, FieldRule]) -> list[str]:
    """Paths a plan would release unchanged although they may hold anything a partner typed.

    The compiler asks this too, so a hand-built or unchecked agreement set cannot share free text.
    The envelope's strings are exempt: the enforcer checks them against the topic they came from.
    """
    return [
        leaf.path
        for leaf in leaves(tree)
        if (rule := rules.get(leaf.path)) is not None
        and rule.released
        and rule.operator == "keep"
        and rule.via != "envelope"
        and ("pii:free_text" in leaf.tags or is_free_text(leaf.avro_type, leaf.field))
    ]


def _special_needs(
    tier: Tier,
    et_name: str,
    publishers: set[str],
    tree: tuple[Node, ...],
    rules: Mapping[str, FieldRule],
    catalogue: Catalogue,
) -> tuple[list[str], bool]:
    """Why this event type needs a special-category (Art 9/10) basis, and whether it releases
    person-level data from a health or social care body (which s.16 never covers)."""
    released = [leaf for leaf in leaves(tree) if (r := rules.get(leaf.path)) is not None and r.released]
    special = [(leaf, sorted(t for t in leaf.tags if t.startswith("special_category:"))) for leaf in released]
    reasons = [f"{et_name} releases {leaf.path} ({', '.join(tags)})" for leaf, tags in special if tags][:1]
    person_level = tier == "individual" or any(leaf.tags & PERSON_TAGS for leaf in released)
    sensitive = False
    if person_level:
        for owner in sorted(publishers):
            sector = catalogue.partners[owner].sector
            if sector in SENSITIVE_SECTORS:
                sensitive = True
                reasons.append(f"{et_name} releases person-level data from a {sector} partner ({owner})")
    return reasons, sensitive
