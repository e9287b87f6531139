"""truncate_date: week / month / year of a date or timestamp, in UK local time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from streams.errors import ConfigurationError, ValidationError
from streams.privacy.operators import Transform, get_operator, parse_params

TS = {"type": "long", "logicalType": "timestamp-millis"}
DATE = {"type": "int", "logicalType": "date"}


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("month", date(2026, 3, 12), "2026-03"),
        ("year", date(2026, 3, 12), "2026"),
        ("week", date(2026, 3, 12), "2026-W11"),
        ("week", date(2027, 1, 1), "2026-W53"),  # ISO week-year, not calendar year
        ("month", datetime(2026, 3, 31, 23, 30, tzinfo=UTC), "2026-04"),  # 00:30 BST
        ("month", datetime(2026, 1, 31, 23, 30, tzinfo=UTC), "2026-01"),  # GMT: no shift
        ("month", "2026-03-12", "2026-03"),
    ],
)
def test_truncation(bind: Callable[..., Transform], unit: str, value: object, expected: str) -> None:
    assert bind("truncate_date", {"unit": unit}, TS)(value, {}) == expected


def test_other_time_zone(bind: Callable[..., Transform]) -> None:
    t = bind("truncate_date", {"unit": "month", "timezone": "UTC"}, TS)
    assert t(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), {}) == "2026-03"


def test_bad_string_is_a_validation_error(bind: Callable[..., Transform]) -> None:
    with pytest.raises(ValidationError, match=r"subject\.field"):
        bind("truncate_date", {"unit": "month"}, "string")("last tuesday", {})


def test_output_type() -> None:
    op, params = get_operator("truncate_date"), parse_params("truncate_date", {"unit": "week"})
    assert op.output_type(params, TS) == op.output_type(params, DATE) == "string"
    with pytest.raises(ConfigurationError):
        op.output_type(params, "double")
