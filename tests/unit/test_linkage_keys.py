"""Linkage tokens: spellings of one identity meet; invalid identifiers are reported, never tokenised."""

from __future__ import annotations

from datetime import date

import pytest

from streams.linkage.encodings import decode_bloom, dice
from streams.linkage.tokens import COMPARISON_KINDS, linkage_tokens
from streams.privacy.identifiers import nhs_check_digit, pnc_check_char, upn_check_letter
from streams.privacy.keys import KeyRing


def _nhs() -> str:
    body = "943476591"
    return body + str(nhs_check_digit(body))


def _upn() -> str:
    tail = "820200109001"
    return upn_check_letter(tail) + tail


def _pnc() -> str:
    return "2019/0012345" + pnc_check_char("190012345")


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate()


BASE = {
    "nhs_number": _nhs(),
    "upn": _upn(),
    "pnc_id": _pnc(),
    "local_id": "CH-1001",
    "given_name": "Zoë",
    "family_name": "O'Brien",
    "date_of_birth": date(2010, 4, 5),
    "postcode": "RG1 2AB",
}


def test_formatting_variants_give_the_same_tokens(ring: KeyRing) -> None:
    variant = {
        "nhs_number": f"{_nhs()[:3]} {_nhs()[3:6]} {_nhs()[6:]}",
        "upn": _upn().lower(),
        "pnc_id": "19/12345" + pnc_check_char("190012345"),
        "local_id": " ch-1001 ",
        "given_name": "ZOE",
        "family_name": "obrien",
        "date_of_birth": "05/04/2010",
        "postcode": "rg12ab",
    }
    assert linkage_tokens(variant, "council", ring) == linkage_tokens(BASE, "council", ring)


def test_swapped_names_share_only_the_swapped_key(ring: KeyRing) -> None:
    swapped = {**BASE, "given_name": BASE["family_name"], "family_name": BASE["given_name"]}
    a, _ = linkage_tokens(BASE, "p", ring)
    b, _ = linkage_tokens(swapped, "p", ring)
    assert a["swapped_name_dob"] == b["swapped_name_dob"]
    assert a["name_dob"] != b["name_dob"]
    assert a["name_dob_district"] != b["name_dob_district"]


def test_hyphen_and_space_in_names_meet(ring: KeyRing) -> None:
    a, _ = linkage_tokens({**BASE, "given_name": "Anne-Marie"}, "p", ring)
    b, _ = linkage_tokens({**BASE, "given_name": "Annemarie"}, "p", ring)
    assert a["name_dob"] == b["name_dob"]


def test_local_ids_are_scoped_per_partner(ring: KeyRing) -> None:
    a, _ = linkage_tokens(BASE, "council", ring)
    b, _ = linkage_tokens(BASE, "probation", ring)
    assert a["local_id"] != b["local_id"]
    assert a["nhs_number"] == b["nhs_number"]


def test_invalid_identifiers_are_listed_and_not_tokenised(ring: KeyRing) -> None:
    bad_nhs = _nhs()[:9] + str((int(_nhs()[9]) + 1) % 10)
    subject = {
        **BASE,
        "nhs_number": bad_nhs,
        "upn": "X" + _upn()[1:],
        "pnc_id": "not a pnc",
        "date_of_birth": "31/02/2010",
        "postcode": "nowhere",
    }
    tokens, invalid = linkage_tokens(subject, "p", ring)
    assert sorted(invalid) == ["date_of_birth", "nhs_number", "pnc_id", "postcode", "upn"]
    assert set(tokens) - set(COMPARISON_KINDS) == {"local_id"}  # no dob -> no exact name keys
    assert not {"dob", "dob_parts", "postcode", "postcode_near"} & set(tokens)


def test_missing_values_are_not_invalid(ring: KeyRing) -> None:
    tokens, invalid = linkage_tokens({"nhs_number": "", "given_name": "Sam", "family_name": None}, "p", ring)
    assert set(tokens) == {"name_given", "bloom_given", "sound_given"} and invalid == []


def test_tokens_are_keyed_and_carry_the_key_id(ring: KeyRing) -> None:
    tokens, _ = linkage_tokens(BASE, "p", ring)
    other, _ = linkage_tokens(BASE, "p", KeyRing.generate())
    every = [t for value in tokens.values() for t in value.split()]
    assert len(every) > len(tokens)  # dob parts and postcode variants are sets
    assert all(t.startswith(f"{ring.active_id}.") for t in every)
    assert set(every).isdisjoint(t for value in other.values() for t in value.split())
    text = " ".join(every).lower()
    assert _nhs() not in text and "obrien" not in text


def _dice(a: dict[str, str], b: dict[str, str], kind: str) -> float:
    x, y = (decode_bloom(t[kind].split(".", 1)[1]) for t in (a, b))
    return dice(x, y, x.bit_count(), y.bit_count())


@pytest.mark.parametrize("typo", ["Obrein", "OBrian", "Obrrien", "Obren"])  # swap, substitute, double, drop
def test_one_typo_keeps_the_name_filters_close(ring: KeyRing, typo: str) -> None:
    a, _ = linkage_tokens(BASE, "p", ring)
    b, _ = linkage_tokens({**BASE, "family_name": typo}, "p", ring)
    assert a["name_family"] != b["name_family"] and a["name_given"] == b["name_given"]
    assert _dice(a, b, "bloom_family") >= 0.55 and _dice(a, a, "bloom_family") == 1.0


def test_twins_names_are_not_close(ring: KeyRing) -> None:
    jack, _ = linkage_tokens({**BASE, "given_name": "Jack"}, "p", ring)
    james, _ = linkage_tokens({**BASE, "given_name": "James"}, "p", ring)
    assert _dice(jack, james, "bloom_given") < 0.55


def test_name_dob_district_needs_a_postcode(ring: KeyRing) -> None:
    tokens, _ = linkage_tokens({**BASE, "postcode": None}, "p", ring)
    assert "name_dob_district" not in tokens and "postcode" not in tokens and "name_dob" in tokens


def test_foreign_postcodes_are_tokenised_with_a_coarser_district(ring: KeyRing) -> None:
    a, invalid = linkage_tokens({**BASE, "postcode": "4223"}, "p", ring)
    b, _ = linkage_tokens({**BASE, "postcode": "4232"}, "p", ring)  # two digits transposed
    c, _ = linkage_tokens({**BASE, "postcode": "4229"}, "p", ring)  # same delivery area
    assert invalid == [] and a["postcode"] != b["postcode"]
    assert set(a["postcode_near"].split()) & set(b["postcode_near"].split())
    assert a["postcode_district"] == c["postcode_district"] != b["postcode_district"]


def test_date_of_birth_parts_catch_one_wrong_part_and_transposition(ring: KeyRing) -> None:
    a, _ = linkage_tokens({**BASE, "date_of_birth": "2010-03-07"}, "p", ring)
    typo, _ = linkage_tokens({**BASE, "date_of_birth": "2011-03-07"}, "p", ring)
    swapped, _ = linkage_tokens({**BASE, "date_of_birth": "2010-07-03"}, "p", ring)
    other, _ = linkage_tokens({**BASE, "date_of_birth": "2011-04-07"}, "p", ring)
    parts = [set(t["dob_parts"].split()) for t in (a, typo, other)]
    assert len(parts[0] & parts[1]) == 1 and not parts[0] & parts[2]
    assert a["dob"] != swapped["dob"] and a["dob_swap"] == swapped["dob_swap"]


def test_a_pinned_key_keeps_tokens_stable_across_rotation() -> None:
    ring = KeyRing.generate()
    before, _ = linkage_tokens(BASE, "p", ring)
    old = ring.active_id
    ring.rotate()
    assert linkage_tokens(BASE, "p", ring, kid=old)[0] == before
    assert set(linkage_tokens(BASE, "p", ring)[0].values()).isdisjoint(before.values())
