"""Identifier normalisation and validation: check digits, canonical forms, and safe error messages."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from streams.errors import ValidationError
from streams.privacy.identifiers import (
    NORMALISERS,
    InvalidIdentifier,
    nhs_check_digit,
    normalise_dob,
    normalise_local_id,
    normalise_name,
    normalise_nhs,
    normalise_pnc,
    normalise_postcode,
    normalise_upn,
    pnc_check_char,
    postcode_area,
    postcode_district,
    postcode_outward,
    postcode_sector,
    upn_check_letter,
)

# --- NHS number ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9434765919", "9434765919"),
        ("943 476 5919", "9434765919"),
        ("943-476-5919", "9434765919"),
        (" 4010232137 ", "4010232137"),
        (4010232137, "4010232137"),
        ("9434765870", "9434765870"),
    ],
)
def test_nhs_valid(raw: object, expected: str) -> None:
    assert normalise_nhs(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "9434765918",
        "4010232138",
        "943476591",
        "94347659190",
        "943476591A",
        "",
        "１２３４５６７８９０",
        None,
        1.5,
    ],
)
def test_nhs_invalid(raw: object) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalise_nhs(raw)
    assert info.value.kind == info.value.field == "nhs_number"
    assert isinstance(info.value, ValidationError)


def test_nhs_check_digit_matches_hand_computation() -> None:
    # 943476591: 9*10+4*9+3*8+4*7+7*6+6*5+5*4+9*3+1*2 = 299; 299 % 11 = 2; 11 - 2 = 9
    assert nhs_check_digit("943476591") == 9
    assert nhs_check_digit("401023213") == 7


def test_nhs_check_digit_none_when_remainder_gives_ten() -> None:
    # 000000001: 1*2 = 2, 11 - 2 = 9; 000000005: 5*2 = 10 -> 1; 000000006: 12 % 11 = 1 -> 10: no number
    assert nhs_check_digit("000000001") == 9
    assert nhs_check_digit("000000006") is None
    assert nhs_check_digit("000000000") == 0  # 11 -> 0


def test_generated_nhs_numbers_validate() -> None:
    for n in range(100_000_000, 100_000_200):
        digit = nhs_check_digit(str(n))
        if digit is not None:
            assert normalise_nhs(f"{n}{digit}") == f"{n}{digit}"


# --- UPN ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("B801200005001", "B801200005001"),  # python-stdnum's documented example
        ("b801200005001", "B801200005001"),
        ("B 801 2000 05 001", "B801200005001"),
        ("P207000016049", "P207000016049"),  # 2*2+7*4+1*9+6*10+4*12+9*13 = 266; 266 % 23 = 13 -> P
    ],
)
def test_upn_valid(raw: str, expected: str) -> None:
    assert normalise_upn(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "A801200005001",  # wrong check letter
        "B207000016049",  # wrong check letter
        "X80120000A001",  # letter in the middle
        "I801200005001",  # I is not a check letter
        "B80120000500",  # too short
        "B8012000050011",  # too long
        "1801200005001",  # no check letter
        "",
    ],
)
def test_upn_invalid(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalise_upn(raw)
    assert info.value.kind == "upn"


def test_upn_temporary_letter_uses_dfe_value_table() -> None:
    # Temporary UPN: the last character is a letter valued by its index in ABCDEFGHJKLMNPQRTUVWXYZ.
    # 80120000500 + "T": 8*2+1*4+2*5+5*10 = 80, plus T=16 at weight 13: 288; 288 % 23 = 12 -> N
    assert upn_check_letter("80120000500T") == "N"
    assert normalise_upn("N80120000500T") == "N80120000500T"
    with pytest.raises(InvalidIdentifier):
        normalise_upn("N80120000500S")  # S is never used


def test_upn_check_letter_round_trip() -> None:
    for serial in range(0, 1000, 37):
        body = f"80120000{serial:04d}"
        assert normalise_upn(upn_check_letter(body) + body).endswith(body)


# --- PNC ID -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1979/0163001B", "79/0163001B"),
        ("79/163001B", "79/0163001B"),
        ("79/0163001b", "79/0163001B"),
        ("19790163001B", "79/0163001B"),
        ("2002/0073319Z", "02/0073319Z"),
        ("81/34U", "81/0000034U"),
        ("67/9893091D", "67/9893091D"),
        (" 2000/0000223R ", "00/0000223R"),
    ],
)
def test_pnc_valid(raw: str, expected: str) -> None:
    assert normalise_pnc(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["1979/0163001C", "79/163001A", "79163001B", "1979/01630011B", "1879/0163001B", "79/B", "", "79/0163001"],
)
def test_pnc_invalid(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalise_pnc(raw)
    assert info.value.kind == "pnc_id"


def test_pnc_check_char() -> None:
    letters = "ZABCDEFGHJKLMNPQRTUVWXY"
    assert pnc_check_char("790163001") == letters[790163001 % 23] == "B"
    assert pnc_check_char("1979/163001") == "B"
    assert pnc_check_char("79/0163001") == "B"
    with pytest.raises(InvalidIdentifier):
        pnc_check_char("7916300")


# --- local ids ----------------------------------------------------------------------------------


def test_local_id() -> None:
    assert normalise_local_id(" x123 456 ") == "X123456"
    assert normalise_local_id(42) == "42"
    for bad in ["", "   ", "x" * 65]:
        with pytest.raises(InvalidIdentifier):
            normalise_local_id(bad)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("O'Brien", "obrien"),
        ("O’Brien", "obrien"),
        ("OBRIEN", "obrien"),
        ("Anne-Marie", "anne marie"),
        ("Anne Marie", "anne marie"),
        ("  José   Álvarez ", "jose alvarez"),
        ("Zoë", "zoe"),
        ("Straße", "strasse"),
        ("Søren", "soren"),
        ("Ægir", "aegir"),
        ("St. John-Smythe", "st john smythe"),
        ("ﬁona", "fiona"),  # NFKD expands the ligature
        ("Smith2", "smith"),
    ],
)
def test_name_normalisation(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "  ", "---", "123", None])
def test_name_without_letters_is_invalid(raw: object) -> None:
    with pytest.raises(InvalidIdentifier):
        normalise_name(raw)


# --- dates of birth -----------------------------------------------------------------------------

TODAY = date(2026, 3, 15)


@pytest.mark.parametrize(
    "raw",
    [
        "2010-03-04",
        "2010-3-4",
        "2010-03-04T00:00:00+00:00",
        "04/03/2010",
        "4/3/2010",
        "04-03-2010",
        "04.03.2010",
        "4 Mar 2010",
        "4 March 2010",
        "04-Mar-2010",
        "4th March, 2010",
        "20100304",
        date(2010, 3, 4),
        datetime(2010, 3, 4, 12, 30),
    ],
)
def test_dob_formats(raw: object) -> None:
    assert normalise_dob(raw, today=TODAY) == date(2010, 3, 4)


@pytest.mark.parametrize(
    "raw",
    [
        "2010-02-30",  # impossible
        "31/04/2010",  # impossible
        "29/02/2011",  # not a leap year
        "4 Foo 2010",
        "04/03/10",  # two-digit year: ambiguous
        "2027-01-01",  # future
        "1900-01-01",  # over 120
        "yesterday",
        "",
        20100304,
    ],
)
def test_dob_rejected(raw: object) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalise_dob(raw, today=TODAY)
    assert info.value.kind == "date_of_birth"


def test_dob_boundaries() -> None:
    assert normalise_dob(TODAY, today=TODAY) == TODAY
    assert normalise_dob(date(1905, 3, 16), today=TODAY) == date(1905, 3, 16)  # 120, 121 tomorrow
    with pytest.raises(InvalidIdentifier):
        normalise_dob(date(1905, 3, 15), today=TODAY)  # 121 today
    with pytest.raises(InvalidIdentifier):
        normalise_dob(date.today() + timedelta(days=1))


# --- postcodes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "norm", "district", "sector", "area"),
    [
        ("rg12ab", "RG1 2AB", "RG1", "RG1 2", "RG"),
        ("RG1  2AB", "RG1 2AB", "RG1", "RG1 2", "RG"),
        (" ox4 1aa ", "OX4 1AA", "OX4", "OX4 1", "OX"),
        ("M11AE", "M1 1AE", "M1", "M1 1", "M"),
        ("B338TH", "B33 8TH", "B33", "B33 8", "B"),
        ("CR26XH", "CR2 6XH", "CR2", "CR2 6", "CR"),
        ("DN551PT", "DN55 1PT", "DN55", "DN55 1", "DN"),
        ("W1A1AA", "W1A 1AA", "W1A", "W1A 1", "W"),
        ("EC1A 1BB", "EC1A 1BB", "EC1A", "EC1A 1", "EC"),
        ("gir0aa", "GIR 0AA", "GIR", "GIR 0", "GI"),
    ],
)
def test_postcodes(raw: str, norm: str, district: str, sector: str, area: str) -> None:
    assert normalise_postcode(raw) == norm
    assert postcode_outward(raw) == postcode_district(raw) == district
    assert postcode_sector(raw) == sector
    if raw != "gir0aa":
        assert postcode_area(raw) == area


@pytest.mark.parametrize(
    "raw", ["RG1", "RG1 2A", "1RG 2AB", "RG1 ABB", "RGX 2AB", "RG1 2AB X", "GIR 1AA", "", 12]
)
def test_postcode_invalid(raw: object) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalise_postcode(raw)
    assert info.value.kind == "postcode"


# --- registry and error hygiene -----------------------------------------------------------------


def test_normalisers_cover_every_identifier_kind() -> None:
    assert set(NORMALISERS) == {
        "nhs_number",
        "upn",
        "pnc_id",
        "local_id",
        "name",
        "date_of_birth",
        "postcode",
    }
    assert NORMALISERS["postcode"]("rg12ab") == "RG1 2AB"


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("nhs_number", "9434765918"),
        ("upn", "A801200005001"),
        ("pnc_id", "1979/0163001C"),
        ("name", "12345"),
        ("date_of_birth", "2999-01-01"),
        ("postcode", "ZZZZZZZZ"),
    ],
)
def test_errors_never_repeat_the_value(kind: str, value: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        NORMALISERS[kind](value)
    assert value not in str(info.value) and value not in repr(info.value.args)
