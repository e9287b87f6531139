"""Comparison of two records' keyed comparison material: the agreement levels Fellegi-Sunter scores.

A `Signature` is what one record carries for comparison (`streams.linkage.tokens.COMPARISON_KINDS`),
decoded once: tokens compare for equality, Bloom filters by Dice. `compare(a, b)` gives one level
per comparison, `NULL` where either side lacks the value (missing is not evidence either way):

| comparison | levels, best first |
|---|---|
| given_name, family_name | exact / Dice >= 0.88 / Dice >= 0.7 / same Soundex / different |
| date_of_birth | exact / day and month transposed / two of year, month, day agree / different |
| postcode | exact / one typo (a changed character, two swapped) / same district / different |

Two records whose given and family names are swapped ("Smith John" / "John Smith") compare as
exact on both names: the name tokens of both fields are keyed under one kind for this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.linkage.encodings import decode_bloom, dice

__all__ = [
    "COMPARISONS",
    "LEVELS",
    "NULL",
    "Signature",
    "blocking_keys",
    "compare",
    "identity_key",
    "signature",
]

NULL = -1
COMPARISONS = ("given_name", "family_name", "date_of_birth", "postcode")
LEVELS: dict[str, tuple[str, ...]] = {  # index = level; the highest index is the closest agreement
    "given_name": ("different", "same Soundex", "Dice >= 0.7", "Dice >= 0.88", "exact"),
    "family_name": ("different", "same Soundex", "Dice >= 0.7", "Dice >= 0.88", "exact"),
    "date_of_birth": ("different", "two of three parts", "day/month transposed", "exact"),
    "postcode": ("different", "same district", "one typo", "exact"),
}
EXACT = 4  # the names' exact level
_DICE = ((3, 0.88), (2, 0.7))  # (level, lowest Dice coefficient of the level)
_EMPTY: frozenset[str] = frozenset()
# Every other comparison token is a function of these four values under one key: equal on these,
# equal on all (so they identify identical material at a fraction of the length).
_IDENTITY = ("name_given", "name_family", "dob", "postcode")


@dataclass(frozen=True, slots=True)
class Signature:
    """One record's comparison material, decoded; `key` identifies identical material."""

    key: str
    given: str | None
    family: str | None
    given_bits: int
    family_bits: int
    given_count: int
    family_count: int
    given_sound: str | None
    family_sound: str | None
    dob: str | None
    dob_parts: frozenset[str]
    dob_swap: str | None
    postcode: str | None
    postcode_near: frozenset[str]
    postcode_district: str | None
    tokens: Mapping[str, str]  # the comparison tokens it was made from (what the state stores)

    blocks: tuple[str, ...]  # blocking keys, see `blocking_keys`


def blocking_keys(
    given_sound: str | None,
    family_sound: str | None,
    dob: str | None,
    dob_parts: frozenset[str],
    postcode: str | None,
) -> tuple[str, ...]:
    """Exact keys a true match is likely to share at least one of (the candidates' index).

    Each is a concatenation of keyed tokens, so it needs no key of its own. Together they
    tolerate a typo in any one field and most pairs of typos in different fields.
    """
    keys = []
    if dob:
        keys.append("d" + dob)
    if given_sound and family_sound:  # sorted: swapped names share it too
        keys.append("s" + "".join(sorted((given_sound, family_sound))))
    if family_sound and postcode:
        keys.append(f"f{family_sound}{postcode}")
    if given_sound and postcode:
        keys.append(f"g{given_sound}{postcode}")
    if family_sound:
        keys.extend(f"y{family_sound}{part}" for part in dob_parts)
    if given_sound:
        keys.extend(f"x{given_sound}{part}" for part in dob_parts)
    return tuple(keys)


def _one(tokens: Mapping[str, str], kind: str) -> str | None:
    return tokens.get(kind) or None


def _bits(tokens: Mapping[str, str], kind: str) -> int:
    text = tokens.get(kind)
    return decode_bloom(text.split(".", 1)[-1]) if text else 0


def identity_key(tokens: Mapping[str, str]) -> str:
    """`Signature.key` of these tokens without decoding anything (to look a known one up)."""
    return "|".join([tokens.get(k) or "" for k in _IDENTITY])


def signature(tokens: Mapping[str, str], kinds: tuple[str, ...]) -> Signature | None:
    """The comparison material of a record's tokens; None when it has none (`kinds` in order)."""
    material = {k: tokens[k] for k in kinds if tokens.get(k)}
    if not material:
        return None
    given_bits, family_bits = _bits(material, "bloom_given"), _bits(material, "bloom_family")
    given_sound, family_sound = _one(material, "sound_given"), _one(material, "sound_family")
    dob, postcode = _one(material, "dob"), _one(material, "postcode")
    dob_parts = frozenset(material["dob_parts"].split()) if "dob_parts" in material else _EMPTY
    return Signature(
        key="|".join([material.get(k, "") for k in _IDENTITY]),
        given=_one(material, "name_given"),
        family=_one(material, "name_family"),
        given_bits=given_bits,
        family_bits=family_bits,
        given_count=given_bits.bit_count(),
        family_count=family_bits.bit_count(),
        given_sound=given_sound,
        family_sound=family_sound,
        dob=dob,
        dob_parts=dob_parts,
        dob_swap=_one(material, "dob_swap"),
        postcode=postcode,
        postcode_near=frozenset(material["postcode_near"].split()) if "postcode_near" in material else _EMPTY,
        postcode_district=_one(material, "postcode_district"),
        tokens=material,
        blocks=blocking_keys(given_sound, family_sound, dob, dob_parts, postcode),
    )


def _name(
    a: str | None,
    b: str | None,
    a_bits: int,
    b_bits: int,
    a_n: int,
    b_n: int,
    a_s: str | None,
    b_s: str | None,
) -> int:
    if a is None or b is None:
        return NULL
    if a == b:
        return EXACT
    similarity = dice(a_bits, b_bits, a_n, b_n)
    for level, bound in _DICE:
        if similarity >= bound:
            return level
    return 1 if a_s is not None and a_s == b_s else 0


def _cross(a: str | None, b: str | None, a_sound: str | None, b_sound: str | None) -> int:
    """One name against the other field's name: exact or same Soundex (Bloom keys are per field)."""
    if a is None or b is None:
        return NULL
    return EXACT if a == b else (1 if a_sound is not None and a_sound == b_sound else 0)


def compare(a: Signature, b: Signature) -> tuple[int, int, int, int]:
    """Agreement level of each of `COMPARISONS` (`NULL` when either side has no value)."""
    given = _name(
        a.given,
        b.given,
        a.given_bits,
        b.given_bits,
        a.given_count,
        b.given_count,
        a.given_sound,
        b.given_sound,
    )
    family = _name(
        a.family,
        b.family,
        a.family_bits,
        b.family_bits,
        a.family_count,
        b.family_count,
        a.family_sound,
        b.family_sound,
    )
    if given < 2 and family < 2:  # neither name is close: were the two fields swapped?
        crossed_given = _cross(a.given, b.family, a.given_sound, b.family_sound)
        crossed_family = _cross(a.family, b.given, a.family_sound, b.given_sound)
        if crossed_given > 0 and crossed_family > 0:
            given, family = crossed_given, crossed_family
    if a.dob is None or b.dob is None:
        dob = NULL
    elif a.dob == b.dob:
        dob = 3
    elif a.dob_swap == b.dob_swap:
        dob = 2
    else:
        dob = 1 if a.dob_parts & b.dob_parts else 0
    if a.postcode is None or b.postcode is None:
        postcode = NULL
    elif a.postcode == b.postcode:
        postcode = 3
    elif a.postcode_near & b.postcode_near:
        postcode = 2
    else:
        postcode = 1 if a.postcode_district == b.postcode_district else 0
    return given, family, dob, postcode
