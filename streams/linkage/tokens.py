"""Linkage tokens of one subject: keyed pseudonyms in the bus-internal `bus:linkage` domain.

The enforcer calls `linkage_tokens` once per (event, subject) and puts the result on
`link.identifiers`; the linker (`streams.linkage.linker`) only ever sees these tokens, never an identifier.
Every identifier is normalised and validated first (`streams.privacy.identifiers`): an NHS number with a bad
check digit is reported in `invalid` and NOT tokenised, because a mistyped number tokenised "as is"
would either found a phantom person or, worse, collide with somebody else's real number.

Token kinds (the keys of the returned dict, in linkage priority order):
- `nhs_number`, `upn`, `pnc_id`: validated national identifiers.
- `local_id`: a partner's own reference (CRN, child id); its HMAC kind is `local_id:<partner>` so two
  partners' reference spaces never meet ("12345" at the council is not "12345" at probation).
- `name_dob_district`: family|given|dob|postcode district; `name_dob`: the same without district.
- `swapped_name_dob_district`, `swapped_name_dob`: the two names sorted, then dob (and district):
  equal for "Smith, John" and "John, Smith", the commonest transposition between agencies' forms.
- `fuzzy_family`, `fuzzy_given`: one typo tolerated in one name. Each is a space-separated SET of
  tokens over (other name exact, dob, district, v) for every v in the name's deletion neighbourhood:
  the name itself and the name with one letter (after the first) removed, at least 3 letters long.
  Two spellings one insertion, deletion, substitution or adjacent swap apart share a member
  ("smith"/"smth"/"simth"/"smyth" all contain "smth"), the symmetric-deletion trick of SymSpell.
  Twins ("Jack"/"James") are more than one edit apart and never share one.
Names are matched with spaces removed ("Anne-Marie" / "Anne Marie" / "Annemarie" meet).
"""

from __future__ import annotations

import hmac
import weakref
from collections.abc import Mapping
from typing import Any

from streams.privacy.identifiers import (
    InvalidIdentifier,
    normalise_dob,
    normalise_local_id,
    normalise_name,
    normalise_nhs,
    normalise_pnc,
    normalise_upn,
    postcode_district,
)
from streams.privacy.keys import KeyRing, pseudonym

__all__ = [
    "FUZZY_KINDS",
    "LINKAGE_DOMAIN",
    "STRONG_KINDS",
    "TOKEN_KINDS",
    "WEAK_KINDS",
    "deletion_neighbourhood",
    "linkage_tokens",
    "primary_token",
]

LINKAGE_DOMAIN = "bus:linkage"
STRONG_KINDS = ("nhs_number", "upn", "pnc_id", "local_id")
FUZZY_KINDS = ("fuzzy_family", "fuzzy_given")  # values are space-separated token sets
WEAK_KINDS = (
    "name_dob_district",
    "swapped_name_dob_district",
    *FUZZY_KINDS,
    "name_dob",
    "swapped_name_dob",
)
TOKEN_KINDS = STRONG_KINDS + WEAK_KINDS
MIN_VARIANT = 3

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


def deletion_neighbourhood(name: str) -> list[str]:
    """`name` and every one-letter deletion after its first letter, at least MIN_VARIANT long, sorted."""
    variants = {name}
    if len(name) > MIN_VARIANT:
        variants.update(name[:i] + name[i + 1 :] for i in range(1, len(name)))
    return sorted(variants)


_FUZZY_MACS: weakref.WeakKeyDictionary[KeyRing, dict[tuple[str, str], hmac.HMAC]] = (
    weakref.WeakKeyDictionary()
)


def _fuzzy(keyring: KeyRing, kid: str, kind: str, fixed: str, name: str) -> str:
    """Space-separated tokens over the deletion neighbourhood of `name`.

    Same construction as `pseudonym` (HMAC-SHA256 under the active key over domain, kind, value),
    but hex-encoded: a subject has a dozen of these, they never leave the linker, and Python 3.11's
    base32 encoder is pure Python (it would double the cost of this function).
    """
    macs = _FUZZY_MACS.setdefault(keyring, {})
    base = macs.get((kid, kind))
    if base is None:
        base = keyring.mac(LINKAGE_DOMAIN, kind, kid)
        macs[(kid, kind)] = base
    out = []
    for variant in deletion_neighbourhood(name):
        h = base.copy()
        h.update(f"{fixed}|{variant}".encode())
        out.append(f"{kid}.{h.digest()[:13].hex()}")
    return " ".join(out)


def linkage_tokens(
    subject: Mapping[str, Any], partner: str, keyring: KeyRing, *, kid: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """(tokens by kind, kinds that were present but invalid) for one decoded `Subject` record.

    `kid` pins the key (default: the active one). Tokens under different keys never match, so a
    deployment that rotates keys should pin the linkage key, or re-link (docs/linkage.md).

    Invalid kinds use the schema's identifier names: `nhs_number`, `upn`, `pnc_id`, `local_id`,
    `name`, `date_of_birth`, `postcode`. A name-based token needs both names and a valid date of birth.
    """
    kid = kid or keyring.active_id
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
        tokens[kind] = pseudonym(keyring, LINKAGE_DOMAIN, hmac_kind, normalised, kid)

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
                keyring, LINKAGE_DOMAIN, "name_dob_district", f"{family}|{given}|{dob}|{district}", kid
            )
        tokens["name_dob"] = pseudonym(keyring, LINKAGE_DOMAIN, "name_dob", f"{family}|{given}|{dob}", kid)
        first, second = sorted((family, given))
        tokens["swapped_name_dob"] = pseudonym(
            keyring, LINKAGE_DOMAIN, "swapped_name_dob", f"{first}|{second}|{dob}", kid
        )
        if district:
            tokens["swapped_name_dob_district"] = pseudonym(
                keyring,
                LINKAGE_DOMAIN,
                "swapped_name_dob_district",
                f"{first}|{second}|{dob}|{district}",
                kid,
            )
            tokens["fuzzy_family"] = _fuzzy(keyring, kid, "fuzzy_family", f"{given}|{dob}|{district}", family)
            tokens["fuzzy_given"] = _fuzzy(keyring, kid, "fuzzy_given", f"{family}|{dob}|{district}", given)
    return tokens, invalid


def primary_token(tokens: Mapping[str, str]) -> str | None:
    """The highest-ranked token of a subject (what the enforcer files the subject's identities under)."""
    return next((tokens[kind] for kind in TOKEN_KINDS if tokens.get(kind)), None)
