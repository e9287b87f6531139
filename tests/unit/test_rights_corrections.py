"""Rectification: corrections land where they say, are coerced like any published value, and a
correction that would make an invalid event is refused without showing the value."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from streams.avro.catalogue import Catalogue, load_catalogue
from streams.rights.corrections import apply_corrections, merge_corrections
from streams.rights.model import RequestRefused

SCHOOLS = "reading_schools"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def _exclusion(catalogue: Catalogue) -> dict[str, Any]:
    from streams.publish.publisher import prepare_event

    return prepare_event(
        catalogue,
        SCHOOLS,
        "education.exclusion",
        {
            "envelope": {"event_id": str(uuid.uuid4()), "occurred_at": datetime(2026, 3, 2, tzinfo=UTC)},
            "subject": {"given_name": "Sam", "date_of_birth": date(2011, 5, 4)},
            "school_urn": "123456",
            "exclusion_type": "SUSPENSION",
            "start_date": date(2026, 3, 2),
            "reason": "OTHER",
        },
    )


def test_corrections_apply_and_are_coerced(catalogue: Catalogue) -> None:
    original = _exclusion(catalogue)
    corrected = apply_corrections(
        catalogue,
        SCHOOLS,
        "education.exclusion",
        original,
        {"reason": "offensive weapon", "subject.date_of_birth": "2011-06-05", "sessions": 6},
    )
    assert corrected["reason"] == "OFFENSIVE_WEAPON"
    assert corrected["subject"]["date_of_birth"] == date(2011, 6, 5)
    assert corrected["sessions"] == 6
    assert corrected["envelope"] == original["envelope"]  # same event, same id
    assert original["reason"] == "OTHER"  # the original is untouched


def test_a_missing_record_on_the_path_is_created(catalogue: Catalogue) -> None:
    original = _exclusion(catalogue) | {"location": None}
    corrected = apply_corrections(
        catalogue, SCHOOLS, "education.exclusion", original, {"location.lsoa_code": "E01016001"}
    )
    assert corrected["location"]["lsoa_code"] == "E01016001"


def _crime(catalogue: Catalogue) -> dict[str, Any]:
    from streams.publish.publisher import prepare_event

    person = {"given_name": "Sam", "family_name": "Lee", "date_of_birth": date(2009, 1, 2)}
    return prepare_event(
        catalogue,
        "thames_valley_police",
        "police.crime_recorded",
        {
            "envelope": {"event_id": str(uuid.uuid4()), "occurred_at": datetime(2026, 3, 2, tzinfo=UTC)},
            "crime_reference": "43/1234/26",
            "offence_code": "8/1",
            "crime_category": "ROBBERY",
            "knife_or_sharp_instrument": False,
            "firearm": False,
            "domestic_abuse": False,
            "people": [
                {"role": "VICTIM", "subject": {**person, "pnc_id": "2009/0000001A"}},
                {"role": "SUSPECT", "subject": {**person, "given_name": "Alex"}},
            ],
        },
    )


def test_array_items_are_corrected_by_index(catalogue: Catalogue) -> None:
    original = _crime(catalogue)
    corrected = apply_corrections(
        catalogue, "thames_valley_police", "police.crime_recorded", original, {"people[1].role": "witness"}
    )
    assert [p["role"] for p in corrected["people"]] == ["VICTIM", "WITNESS"]
    with pytest.raises(RequestRefused, match="no item 5 in people"):
        apply_corrections(
            catalogue, "thames_valley_police", "police.crime_recorded", original, {"people[5].role": "victim"}
        )


@pytest.mark.parametrize(
    ("corrections", "reason"),
    [
        ({"no_such_field": 1}, "has no field"),
        ({"subject.date_of_birth": "the 5th of never"}, "not a valid education.exclusion"),
        ({"exclusion_type": "EXPELLED"}, "not a valid education.exclusion"),
    ],
)
def test_invalid_corrections_are_refused(
    catalogue: Catalogue, corrections: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RequestRefused, match=reason) as info:
        apply_corrections(catalogue, SCHOOLS, "education.exclusion", _exclusion(catalogue), corrections)
    assert "5th of never" not in info.value.reason  # personal data never reaches the audit


def test_later_rectifications_win_and_earlier_ones_persist() -> None:
    assert merge_corrections([{"a": 1, "b": 1}, {"b": 2}, {"c": 3}]) == {"a": 1, "b": 2, "c": 3}
