"""Linkage tokens of one subject: keyed pseudonyms in the bus-internal `bus:linkage` domain.

The enforcer calls `linkage_tokens` once per (event, subject) and puts the result on
`link.identifiers`; the linker (`streams.linkage.linker`) only ever sees these tokens, never an identifier.
Every identifier is normalised and validated first (`streams.privacy.identifiers`): an NHS number with a bad
check digit is reported in `invalid` and NOT tokenised, because a mistyped number tokenised "as is"
would either found a phantom person or, worse, collide with somebody else's real number.
Every token is an HMAC-SHA256 under the linkage domain's key, obtained from the key ring
(`KeyRing.mac`): this module never holds key bytes.

Token kinds (the keys of the returned dict):
- `nhs_number`, `upn`, `pnc_id`: validated national identifiers.
- `local_id`: a partner's own reference (CRN, child id); its HMAC kind is `local_id:<partner>` so two
  partners' reference spaces never meet ("12345" at the council is not "12345" at probation).
- exact keys (`EXACT_KINDS`): `name_dob_district` = family|given|dob|postcode district; `name_dob` the
  same without district; `swapped_*` the two names sorted ("Smith, John" = "John, Smith").
- comparison material (`COMPARISON_KINDS`), for the probabilistic score (`streams.linkage.compare`):
  keyed exact names (one HMAC kind for both fields, so swapped names can be recognised), keyed
  Bloom filters of each name's bigrams (compared by Dice), keyed Soundex codes, the date of birth
  and its parts (year+month, year+day, month+day: two of three agree when one part has a typo;
  year with month and day sorted: day/month transposed), the postcode, its district (UK outward
  code; other countries' postcodes all but the last character) and its variants with one
  character masked or two adjacent ones sorted (one typo or transposition apart: one shared).
  Sets of tokens are space-separated.
Names are matched with spaces removed ("Anne-Marie" / "Anne Marie" / "Annemarie" meet).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from datetime import date
from typing import Any

from streams.linkage.encodings import bigram_mask, bloom, soundex
from streams.privacy.identifiers import (
    InvalidIdentifier,
    normalise_dob,
    normalise_local_id,
    normalise_name,
    normalise_nhs,
    normalise_pnc,
    normalise_postcode,
    normalise_upn,
)
from streams.privacy.keys import KeyRing, pseudonym

__all__ = [
    "COMPARISON_KINDS",
    "EXACT_KINDS",
    "FUZZY_KINDS",
    "LINKAGE_DOMAIN",
    "STRONG_KINDS",
    "TOKEN_KINDS",
    "WEAK_KINDS",
    "linkage_tokens",
    "postcode_parts",
    "primary_token",
]

LINKAGE_DOMAIN = "bus:linkage"
STRONG_KINDS = ("nhs_number", "upn", "pnc_id", "local_id")
EXACT_KINDS = ("name_dob_district", "swapped_name_dob_district", "name_dob", "swapped_name_dob")
WEAK_KINDS = EXACT_KINDS  # the deterministic name tiers of the linker, in order
COMPARISON_KINDS = (
    "name_given",
    "name_family",
    "bloom_given",
    "bloom_family",
    "sound_given",
    "sound_family",
    "dob",
    "dob_parts",
    "dob_swap",
    "postcode",
    "postcode_near",
    "postcode_district",
)
# Comparison material only serves the score: it names no identifier the vault could be asked about.
FUZZY_KINDS = COMPARISON_KINDS
TOKEN_KINDS = STRONG_KINDS + EXACT_KINDS

_STRONG_NORMALISERS = (
    ("nhs_number", normalise_nhs),
    ("upn", normalise_upn),
    ("pnc_id", normalise_pnc),
    ("local_id", normalise_local_id),
)
_MEMO = 200_000
_FOREIGN_POSTCODE = re.compile(r"(?=[A-Z]*[0-9])[A-Z0-9]{3,10}")


def _present(value: Any) -> bool:
    """None and blank text mean "not recorded", which is not the same as invalid."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _name_key(value: Any) -> str:
    return normalise_name(value).replace(" ", "")


def postcode_parts(value: Any) -> tuple[str, str]:
    """(postcode without spaces, district) of a UK postcode, or of another country's postcode.

    Another country's postcode is 3-10 letters and digits with at least one digit ("4223" in
    Australia, "75008" in France); its "district" is all but its last character, which in the
    numeric systems is the next coarser delivery area. Anything else is invalid.
    """
    try:
        uk = normalise_postcode(value)
        return uk.replace(" ", ""), uk.split(" ")[0]
    except InvalidIdentifier:
        compact = re.sub(r"[\s-]", "", str(value)).upper()
        if not _FOREIGN_POSTCODE.fullmatch(compact):
            raise
        return compact, compact[:-1]


def _one_typo(text: str) -> list[str]:
    """Variants two strings one substitution or one adjacent transposition apart share."""
    masked = [f"{text[:i]}?{text[i + 1 :]}" for i in range(len(text))]
    swapped = [f"{text[:i]}<{''.join(sorted(text[i : i + 2]))}>{text[i + 2 :]}" for i in range(len(text) - 1)]
    return masked + swapped


class _Keyed:
    """Memoised comparison tokens and bigram bit masks of one key ring in the linkage domain.

    The keyed HMACs themselves come from the ring (`KeyRing.mac`, primed there once per kind).
    """

    def __init__(self, keyring: KeyRing) -> None:
        self._ring = keyring
        self._masks: dict[tuple[str, str, str], int] = {}
        self._short: dict[tuple[str, str, str], str] = {}

    def short(self, kid: str, kind: str, value: str) -> str:
        """`<kid>.` + 24 hex characters (96 bits) of the HMAC: comparison tokens stay inside the bus.

        Names, codes, date parts and postcodes recur across people, so tokens are memoised (bounded:
        the cache starts again when full); an HMAC object copy costs ~4 us in CPython.
        """
        token = self._short.get((kid, kind, value))
        if token is None:
            h = self._ring.mac(LINKAGE_DOMAIN, kind, kid)
            h.update(value.encode())
            token = f"{kid}.{h.digest()[:12].hex()}"
            if len(self._short) >= _MEMO:
                self._short.clear()
            self._short[(kid, kind, value)] = token
        return token

    def many(self, kid: str, kind: str, values: list[str]) -> str:
        return " ".join(sorted({self.short(kid, kind, v) for v in values}))

    def bloom(self, kid: str, kind: str, name: str) -> str:
        primed = self._ring.mac(LINKAGE_DOMAIN, kind, kid)

        def mask_of(gram: str) -> int:
            mask = self._masks.get((kid, kind, gram))
            if mask is None:
                mask = self._masks[(kid, kind, gram)] = bigram_mask(primed, gram)
            return mask

        return f"{kid}.{bloom(mask_of, name)}"


_KEYED: weakref.WeakKeyDictionary[KeyRing, _Keyed] = weakref.WeakKeyDictionary()


def _keyed(keyring: KeyRing) -> _Keyed:
    keyed = _KEYED.get(keyring)
    if keyed is None:
        keyed = _KEYED[keyring] = _Keyed(keyring)
    return keyed


def _comparison_tokens(
    k: _Keyed,
    kid: str,
    given: str | None,
    family: str | None,
    dob: date | None,
    postcode: tuple[str, str] | None,
) -> dict[str, str]:
    out: dict[str, str] = {}
    for field, name in (("given", given), ("family", family)):
        if name:
            out[f"name_{field}"] = k.short(kid, "name", name)  # one kind: swapped names compare
            out[f"bloom_{field}"] = k.bloom(kid, f"bloom:{field}_name", name)  # per-field key
            out[f"sound_{field}"] = k.short(kid, "soundex", soundex(name))
    if dob is not None:
        y, m, d = f"{dob.year:04d}", f"{dob.month:02d}", f"{dob.day:02d}"
        out["dob"] = k.short(kid, "dob", f"{y}{m}{d}")
        out["dob_parts"] = k.many(kid, "dob_part", [f"ym|{y}|{m}", f"yd|{y}|{d}", f"md|{m}|{d}"])
        out["dob_swap"] = k.short(kid, "dob_swap", f"{y}|{min(m, d)}|{max(m, d)}")
    if postcode is not None:
        full, district = postcode
        out["postcode"] = k.short(kid, "postcode", full)
        out["postcode_near"] = k.many(kid, "postcode_near", _one_typo(full))
        out["postcode_district"] = k.short(kid, "postcode_district", district)
    return out


def linkage_tokens(
    subject: Mapping[str, Any], partner: str, keyring: KeyRing, *, kid: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """(tokens by kind, kinds that were present but invalid) for one decoded `Subject` record.

    `kid` pins the key (default: the active one). Tokens under different keys never match, so a
    deployment that rotates keys should pin the linkage key, or re-link (docs/linkage.md).

    Invalid kinds use the schema's identifier names: `nhs_number`, `upn`, `pnc_id`, `local_id`,
    `name`, `date_of_birth`, `postcode`. The exact name keys need both names and a valid date of
    birth; comparison material is made from whatever is present and valid.
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

    dob: date | None = None
    postcode: tuple[str, str] | None = None
    given = family = None
    for field in ("given_name", "family_name"):
        raw = subject.get(field)
        if not _present(raw):
            continue
        try:
            if field == "given_name":
                given = _name_key(raw)
            else:
                family = _name_key(raw)
        except InvalidIdentifier:
            if "name" not in invalid:
                invalid.append("name")
    if _present(subject.get("date_of_birth")):
        try:
            dob = normalise_dob(subject["date_of_birth"])
        except InvalidIdentifier:
            invalid.append("date_of_birth")
    if _present(subject.get("postcode")):
        try:
            postcode = postcode_parts(subject["postcode"])
        except InvalidIdentifier:
            invalid.append("postcode")

    if given and family and dob:
        iso = dob.isoformat()
        district = postcode[1] if postcode else None
        first, second = sorted((family, given))
        if district:
            tokens["name_dob_district"] = pseudonym(
                keyring, LINKAGE_DOMAIN, "name_dob_district", f"{family}|{given}|{iso}|{district}", kid
            )
            tokens["swapped_name_dob_district"] = pseudonym(
                keyring,
                LINKAGE_DOMAIN,
                "swapped_name_dob_district",
                f"{first}|{second}|{iso}|{district}",
                kid,
            )
        tokens["name_dob"] = pseudonym(keyring, LINKAGE_DOMAIN, "name_dob", f"{family}|{given}|{iso}", kid)
        tokens["swapped_name_dob"] = pseudonym(
            keyring, LINKAGE_DOMAIN, "swapped_name_dob", f"{first}|{second}|{iso}", kid
        )
    tokens.update(_comparison_tokens(_keyed(keyring), kid, given, family, dob, postcode))
    return tokens, invalid


def primary_token(tokens: Mapping[str, str]) -> str | None:
    """The highest-ranked token of a subject (what the enforcer files the subject's identities under)."""
    return next((tokens[kind] for kind in TOKEN_KINDS if tokens.get(kind)), None)
