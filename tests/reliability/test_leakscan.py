"""The leak scanner itself: what it must find (in any common format) and what it must not flag.

Fast, no broker: the end-to-end scan is `test_leaks.py`; this pins the matching rules so a scan
that finds nothing cannot be a scanner that sees nothing.
"""

from __future__ import annotations

from datetime import date

import pytest

from streams.privacy.leakscan import LeakScanner, Secrets, mask

PERSON = {
    "nhs_number": "9991234567",
    "upn": "A123456789012",
    "pnc_id": "08/1234567A",
    "given_name": "Anne-Marie",
    "family_name": "O'Brien",
    "date_of_birth": "2008-03-14",
    "postcode": "RG1 2AB",
    "local_ids": {"reading_childrens_services": "RCS123456"},
    "variants": [{"field": "family_name", "value": "OBrien", "kind": "punctuation"}],
}


@pytest.fixture(scope="module")
def scanner() -> LeakScanner:
    secrets = Secrets()
    secrets.add_truth_row(PERSON)
    secrets.add_free_text("Bus station, near Zoë Smith's address")
    secrets.add_coordinate(51.4567891)
    return LeakScanner(secrets)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("nhs 999 123 4567 x", "nhs_number"),
        ("999-123-4567", "nhs_number"),
        ('"nhs":"9991234567"', "nhs_number"),
        ("upn a123456789012", "identifier"),
        ("pnc 08/1234567a", "identifier"),
        ("local RCS123456.", "identifier"),
        ("born 14/03/2008", "date_of_birth"),
        ("14.3.2008", "date_of_birth"),
        ("2008/03/14", "date_of_birth"),
        ("20080314", "date_of_birth"),
        ("14032008", "date_of_birth"),
        ("14 March 2008", "date_of_birth"),
        ("14th Mar 2008", "date_of_birth"),
        ("March 14, 2008", "date_of_birth"),
        ("3/14/2008", "date_of_birth"),
        ("14/03/08", "date_of_birth"),
        ("Anne-Marie O'Brien", "name"),
        ("O'BRIEN, ANNE-MARIE", "name"),
        ("anne-marie obrien", "name"),
        ("lives at rg12ab", "postcode"),
        ("RG1  2AB", "postcode"),
        ("BUS STATION, NEAR ZOË SMITH'S ADDRESS", "free_text"),
        ("lat 51.4567891", "coordinates"),
    ],
)
def test_finds_a_secret_in_any_common_format(scanner: LeakScanner, text: str, kind: str) -> None:
    assert kind in {leak.kind for leak in scanner.scan_text("t", text)}


@pytest.mark.parametrize(
    "text",
    [
        "k1.abcdefgh9991234567xyz",  # a token containing the digits
        "p.aaaarg12abaaaa",
        "district RG1, sector RG1 2",
        "2008-03-15",
        "age band 14-18",
        "51.457",  # rounded to 3 decimals: released on purpose
        "Anne Smith",
        "ts 2026-11-25T15:13:24",
        "bus station",  # part of a free text is not the free text
    ],
)
def test_does_not_flag_what_may_leave(scanner: LeakScanner, text: str) -> None:
    assert scanner.scan_text("t", text) == []


def test_structured_values_names_alone_and_reports_masked(scanner: LeakScanner) -> None:
    leaks = scanner.scan_value("rec", {"person": {"given_name": "Anne-Marie"}, "dob": date(2008, 3, 14)})
    assert {leak.kind for leak in leaks} == {"name", "date_of_birth"}
    for leak in leaks:
        assert "Anne-Marie" not in str(leak) and "2008-03-14" not in str(leak)
    assert mask("9991234567") == "99…(10)"
    assert scanner.scan_bytes("b", b'{"x": "9991234567"}')[0].kind == "nhs_number"
    assert scanner.scan_bytes("b", b"\xff\xfe raw 999 123 4567")[0].kind == "nhs_number"
