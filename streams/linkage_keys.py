"""Linkage tokens of one subject: keyed pseudonyms in the bus-internal `bus:linkage` domain.

The enforcer calls `linkage_tokens` once per (event, subject) and puts the result on
`link.identifiers`; the linker (`streams.linkage`) only ever sees these tokens, never an identifier.
Every identifier is normalised and validated first (`streams.identifiers`): an NHS number with a bad
check digit is reported in `invalid` and NOT tokenised, because a mistyped number tokenised "as is"
would either found a phantom person or, worse, collide with somebody else's real number.

Token kinds (the keys of the returned dict, in linkage priority order):
- `nhs_number`, `upn`, `pnc_id`: validated national identifiers.
- `local_id`: a partner's own reference (CRN, child id); its HMAC kind is `local_id:<partner>` so two
  partners' reference spaces never meet ("12345" at the council is not "12345" at probation).
- `name_dob_district`: family|given|dob|postcode district.
- `name_dob`: family|given|dob.
- `swapped_name_dob`: the two names sorted, then dob: equal for "Smith, John" and "John, Smith", the
  commonest transposition between agencies' forms.
Names are matched with spaces removed ("Anne-Marie" / "Anne Marie" / "Annemarie" meet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.identifiers import (
    InvalidIdentifier,
    normalise_dob,
    normalise_local_id,
    normalise_name,
    normalise_nhs,
    normalise_pnc,
    normalise_upn,
    postcode_district,
)
from streams.keys import KeyRing, pseudonym

__all__ = ["LINKAGE_DOMAIN", "STRONG_KINDS", "TOKEN_KINDS", "WEAK_KINDS", "linkage_tokens"]

LINKAGE_DOMAIN = "bus:linkage"
STRONG_KINDS = ("nhs_number", "upn", "pnc_id", "local_id")
WEAK_KINDS = ("name_dob_district", "name_dob", "swapped_name_dob")
TOKEN_KINDS = STRONG_KINDS + WEAK_KINDS

_STRONG_NORMALISERS = (
    ("nhs_number", normalise_nhs),
    ("upn", normalise_upn),
    ("pnc_id", normalise_pnc),
    ("local_id", normalise_local_id),
)


def _present(value: Any) -> bool:
    """None and blank text mean "not recorded", which is not the same as invalid."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _name_key(value: Any) -> str:
    return normalise_name(value).replace(" ", "")


def linkage_tokens(
    subject: Mapping[str, Any], partner: str, keyring: KeyRing
) -> tuple[dict[str, str], list[str]]:
    """(tokens by kind, kinds that were present but invalid) for one decoded `Subject` record.

    Invalid kinds use the schema's identifier names: `nhs_number`, `upn`, `pnc_id`, `local_id`,
    `name`, `date_of_birth`, `postcode`. A name-based token needs both names and a valid date of birth.
    """
    tokens: dict[str, str] = {}
    invalid: list[str] = []
    for kind, normalise in _STRONG_NORMALISERS:
        value = subject.get(kind)
        if not _present(value):
            continue
        try:
            normalised = normalise(value)
        except InvalidIdentifier:
            invalid.append(kind)
            continue
        hmac_kind = f"local_id:{partner}" if kind == "local_id" else kind
        tokens[kind] = pseudonym(keyring, LINKAGE_DOMAIN, hmac_kind, normalised)

    dob = district = None
    given_raw, family_raw = subject.get("given_name"), subject.get("family_name")
    try:
        given = _name_key(given_raw) if _present(given_raw) else None
        family = _name_key(family_raw) if _present(family_raw) else None
    except InvalidIdentifier:
        invalid.append("name")
        given = family = None
    if _present(subject.get("date_of_birth")):
        try:
            dob = normalise_dob(subject["date_of_birth"]).isoformat()
        except InvalidIdentifier:
            invalid.append("date_of_birth")
    if _present(subject.get("postcode")):
        try:
            district = postcode_district(subject["postcode"])
        except InvalidIdentifier:
            invalid.append("postcode")

    if given and family and dob:
        if district:
            tokens["name_dob_district"] = pseudonym(
                keyring, LINKAGE_DOMAIN, "name_dob_district", f"{family}|{given}|{dob}|{district}"
            )
        tokens["name_dob"] = pseudonym(keyring, LINKAGE_DOMAIN, "name_dob", f"{family}|{given}|{dob}")
        first, second = sorted((family, given))
        tokens["swapped_name_dob"] = pseudonym(
            keyring, LINKAGE_DOMAIN, "swapped_name_dob", f"{first}|{second}|{dob}"
        )
    return tokens, invalid
