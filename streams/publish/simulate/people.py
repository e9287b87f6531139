"""Synthetic people, their identifiers, and how each partner's records spell them.

Risk is a latent per-person level with coherent factors: people with gang or exploitation factors
are also the likeliest suspects, excluded pupils and missing children, so views have signal.
Identifiers are valid (NHS mod-11 in the 999 test range, UPN check letter, PNC check letter,
generated with `streams.privacy.identifiers`). Each partner holds its own record of a person, drawn once
from a generator seeded by (seed, person, partner): typos, swapped names, spaced NHS numbers,
lower-case postcodes, different date formats in extracts, and occasionally a mistyped identifier
whose check digit fails. Every such variant is listed in the ground truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from streams.privacy.identifiers import nhs_check_digit, pnc_check_char, upn_check_letter
from streams.publish.simulate.geography import BERKSHIRE, LA_CODES, Geography, Place
from streams.publish.simulate.names import FAMILY, GIVEN_FEMALE, GIVEN_MALE

HIGH_FACTORS = ("GANGS", "CHILD_CRIMINAL_EXPLOITATION", "GOING_MISSING", "SUBSTANCE_MISUSE")
FAMILY_FACTORS = ("DOMESTIC_ABUSE", "NEGLECT", "MENTAL_HEALTH", "EMOTIONAL_ABUSE")
TIERS = {"low": 0.05, "medium": 0.35, "high": 1.0}
LOCAL_ID_PREFIX = {"social_care": "CS", "probation": "X", "youth_justice": "YJ", "housing": "HN"}
DOB_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%-d %b %Y", "%Y%m%d")


@dataclass
class Person:
    """One simulated person: the canonical identity partners' records are variants of."""

    person_id: str
    given_name: str
    family_name: str
    gender: str
    date_of_birth: date
    home: Place
    nhs_number: str
    upn: str | None
    pnc_id: str | None
    tier: str
    factors: tuple[str, ...]
    looked_after: bool
    risk: float = 0.0
    event_ids: list[str] = field(default_factory=list)
    anonymous_event_ids: list[str] = field(default_factory=list)

    def age(self, on: date) -> int:
        dob = self.date_of_birth
        return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


@dataclass
class PartnerRecord:
    """How one partner records one person (stable across that partner's events)."""

    partner: str
    sector: str
    subject: dict[str, Any]
    dob_format: str
    variants: list[dict[str, str]]
    used: bool = False


# --- identifiers --------------------------------------------------------------------------------


def make_nhs_number(rng: random.Random) -> str:
    """A valid NHS number in the 999 range NHS England reserves for testing (never a real patient)."""
    while True:
        first9 = f"999{rng.randrange(10**6):06d}"
        check = nhs_check_digit(first9)
        if check is not None:
            return f"{first9}{check}"


def make_upn(rng: random.Random, local_authority: str, entry_year: int) -> str:
    """Check letter + DfE LA number + establishment + 2-digit year of allocation + serial."""
    body = (
        f"{LA_CODES[local_authority]}{rng.randint(2000, 4999)}{entry_year % 100:02d}{rng.randrange(1000):03d}"
    )
    return upn_check_letter(body) + body


def make_pnc_id(rng: random.Random, year: int) -> str:
    """YY/NNNNNNNA with the PNC check letter."""
    yy, serial = f"{year % 100:02d}", f"{rng.randrange(1, 10**7):07d}"
    return f"{yy}/{serial}{pnc_check_char(yy + serial)}"


def mistype(rng: random.Random, value: str) -> str:
    """Change one digit: every identifier's check character catches a single wrong digit."""
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    i = rng.choice(positions)
    digit = str((int(value[i]) + rng.randint(1, 9)) % 10)
    return value[:i] + digit + value[i + 1 :]


# --- population ---------------------------------------------------------------------------------


def make_population(rng: random.Random, n: int, today: date, geo: Geography) -> list[Person]:
    """`n` people, mostly aged 10-30, risk tiers skewed towards deprived areas."""
    people = []
    nhs_seen: set[str] = set()
    for i in range(n):
        gender = rng.choices(["MALE", "FEMALE", "OTHER"], weights=[50, 49, 1])[0]
        given = rng.choice(GIVEN_MALE if gender == "MALE" else GIVEN_FEMALE)
        family = rng.choice(FAMILY)
        r = rng.random()
        age = rng.randint(10, 30) if r < 0.8 else rng.randint(4, 9) if r < 0.9 else rng.randint(31, 60)
        dob = today - timedelta(days=age * 365 + rng.randrange(365))
        home = geo.home(rng)
        nhs = make_nhs_number(rng)
        while nhs in nhs_seen:
            nhs = make_nhs_number(rng)
        nhs_seen.add(nhs)
        upn = make_upn(rng, home.local_authority, dob.year + 4) if age <= 25 else None
        deprivation = (11 - home.imd_decile) / 10  # 1.0 in the most deprived decile
        boost = 1.0 + (0.6 if gender == "MALE" else 0.0)
        u = rng.random()
        tier = (
            "high" if u < 0.05 * boost * deprivation * 1.6 else "medium" if u < 0.25 * deprivation else "low"
        )
        factors: list[str] = []
        if tier == "high":
            factors += [f for f in HIGH_FACTORS if rng.random() < 0.5] or [rng.choice(HIGH_FACTORS[:2])]
        if tier != "low" or rng.random() < 0.05:
            factors += [f for f in FAMILY_FACTORS if rng.random() < 0.3]
        first_contact = max(dob.year + 12, today.year - 12)
        has_pnc = age >= 12 and rng.random() < {"low": 0.04, "medium": 0.5, "high": 0.95}[tier]
        pnc = make_pnc_id(rng, rng.randint(first_contact, today.year)) if has_pnc else None
        looked_after = age < 18 and rng.random() < {"low": 0.01, "medium": 0.06, "high": 0.25}[tier]
        people.append(
            Person(
                f"P{i + 1:06d}",
                given,
                family,
                gender,
                dob,
                home,
                nhs,
                upn,
                pnc,
                tier,
                tuple(dict.fromkeys(factors)),
                looked_after,
                TIERS[tier] * rng.uniform(0.7, 1.3),
            )
        )
    return people


# --- partner records (variants) -----------------------------------------------------------------


def _typo(rng: random.Random, name: str) -> str:
    if len(name) < 4:
        return name + name[-1]
    i = rng.randrange(1, len(name) - 2)
    kind = rng.randrange(3)
    if kind == 0:  # swap two neighbours
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    if kind == 1:  # drop a letter
        return name[:i] + name[i + 1 :]
    return name[:i] + name[i] + name[i:]  # double a letter


def partner_record(
    seed: int, person: Person, partner: str, sector: str, invalid_rate: float
) -> PartnerRecord:
    """The partner's stable view of `person`, with its variants recorded for the truth file."""
    rng = random.Random(f"{seed}/{person.person_id}/{partner}")
    variants: list[dict[str, str]] = []

    def vary(field_name: str, value: str, kind: str) -> str:
        variants.append({"partner": partner, "field": field_name, "value": value, "kind": kind})
        return value

    given, family = person.given_name, person.family_name
    if rng.random() < 0.06:
        family = vary("family_name", _typo(rng, family), "typo")
    if rng.random() < 0.04:
        given = vary("given_name", _typo(rng, given), "typo")
    if any(c in family for c in "'-") and rng.random() < 0.4:
        family = vary("family_name", family.replace("'", "").replace("-", " "), "punctuation")
    if rng.random() < 0.03:
        given, family = family, given
        vary("given_name", given, "swapped_names")
        vary("family_name", family, "swapped_names")
    postcode = person.home.postcode
    if rng.random() < 0.15:
        postcode = vary("postcode", postcode.replace(" ", "").lower(), "format")
    subject: dict[str, Any] = {
        "given_name": given,
        "family_name": family,
        "date_of_birth": person.date_of_birth,
        "postcode": postcode,
        "gender": person.gender,
    }
    holds = {
        "police": ("pnc_id",),
        "education": ("upn",),
        "social_care": ("nhs_number", "upn", "local_id"),
        "probation": ("pnc_id", "local_id"),
        "youth_justice": ("pnc_id", "upn", "local_id"),
        "housing": ("local_id", "nhs_number"),
    }.get(sector, ())
    canonical = {"nhs_number": person.nhs_number, "upn": person.upn, "pnc_id": person.pnc_id}
    for kind in holds:
        if kind == "local_id":
            subject["local_id"] = f"{LOCAL_ID_PREFIX[sector]}{rng.randrange(10**6):06d}"
            continue
        value = canonical[kind]
        if value is None or (kind == "nhs_number" and sector == "housing" and rng.random() < 0.8):
            continue
        if kind == "upn" and sector != "education" and rng.random() < 0.5:
            continue
        if rng.random() < invalid_rate:
            value = vary(kind, mistype(rng, value), "invalid_check_digit")
        elif kind == "nhs_number" and rng.random() < 0.25:
            value = vary(kind, f"{value[:3]} {value[3:6]} {value[6:]}", "format")
        subject[kind] = value
    dob_format = DOB_FORMATS[0] if rng.random() < 0.6 else rng.choice(DOB_FORMATS[1:])
    if dob_format != DOB_FORMATS[0]:
        vary("date_of_birth", person.date_of_birth.strftime(dob_format), "format_in_extracts")
    return PartnerRecord(partner, sector, subject, dob_format, variants)


def in_berkshire(person: Person) -> bool:
    return person.home.local_authority in BERKSHIRE
