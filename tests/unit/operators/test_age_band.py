"""age_band: age at the event date (UK local), banded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from streams.errors import ConfigurationError
from streams.privacy.identifiers import InvalidIdentifier
from streams.privacy.operators import Transform, get_operator, parse_params
from streams.privacy.operators.age_band import band_labels

from ._support import event_at

BANDS = {"bands": [0, 10, 14, 18, 25, 35, 50, 65]}
DATE = {"type": "int", "logicalType": "date"}


@pytest.mark.parametrize(
    ("dob", "label"),
    [
        (date(2026, 3, 15), "0-9"),  # born that day
        (date(2016, 3, 16), "0-9"),  # 10 tomorrow
        (date(2016, 3, 15), "10-13"),  # 10 today
        (date(2012, 3, 15), "14-17"),
        (date(2008, 3, 16), "14-17"),
        (date(2008, 3, 15), "18-24"),
        (date(1961, 3, 15), "65+"),
        ("15/03/2012", "14-17"),
    ],
)
def test_bands_at_event_date(bind: Callable[..., Transform], dob: object, label: str) -> None:
    assert bind("age_band", BANDS, DATE)(dob, event_at(datetime(2026, 3, 15, 12, tzinfo=UTC))) == label


def test_event_date_is_uk_local(bind: Callable[..., Transform]) -> None:
    t = bind("age_band", {"bands": [0, 18]}, DATE)
    dob = date(2008, 7, 1)
    # 23:30 UTC on 30 June is 00:30 BST on 1 July: the 18th birthday.
    assert t(dob, event_at(datetime(2026, 6, 30, 23, 30, tzinfo=UTC))) == "18+"
    assert t(dob, event_at(datetime(2026, 6, 30, 22, 30, tzinfo=UTC))) == "0-17"


def test_below_first_band_and_labels() -> None:
    assert band_labels((10, 14, 18)) == ["<10", "10-13", "14-17", "18+"]
    assert band_labels((0, 1, 5)) == ["<0", "0", "1-4", "5+"]


def test_born_after_event_is_invalid(bind: Callable[..., Transform]) -> None:
    with pytest.raises(InvalidIdentifier):
        bind("age_band", BANDS, DATE)(date(2026, 3, 16), event_at(datetime(2026, 3, 15, tzinfo=UTC)))


def test_output_type() -> None:
    op, params = get_operator("age_band"), parse_params("age_band", BANDS)
    assert op.output_type(params, DATE) == "string"
    with pytest.raises(ConfigurationError, match="age_band"):
        op.output_type(params, "long")
