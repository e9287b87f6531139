"""age_band: date of birth -> age band at the event date, e.g. "10-13", "65+".

The age is taken at `envelope.occurred_at` in UK local time (not at processing time), so a replay
next year gives the same band. A birth date after the event is an invalid identifier.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from datetime import date, datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from streams.privacy.identifiers import InvalidIdentifier, normalise_dob
from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform, avro_kind

UK = ZoneInfo("Europe/London")


class AgeBandParams(OperatorParams):
    bands: tuple[int, ...] = Field(min_length=1)  # lower bounds in years, e.g. (0, 10, 14, 18, 25)

    @field_validator("bands")
    @classmethod
    def _increasing(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if v[0] < 0 or any(b <= a for a, b in pairwise(v)):
            raise ValueError("must be non-negative and strictly increasing")
        return v


def band_labels(bounds: tuple[int, ...]) -> list[str]:
    """Labels for [below first, b0..b1-1, ..., last+]: (10, 14, 18) -> ["<10", "10-13", "14-17", "18+"]."""
    inner = [f"{a}-{b - 1}" if b - 1 > a else str(a) for a, b in pairwise(bounds)]
    return [f"<{bounds[0]}", *inner, f"{bounds[-1]}+"]


def event_date(event: Mapping[str, Any]) -> date:
    """The event's UK calendar date from envelope.occurred_at (aware datetime; naive taken as UTC)."""
    occurred = event["envelope"]["occurred_at"]
    if isinstance(occurred, datetime):
        return occurred.astimezone(UK).date() if occurred.tzinfo else occurred.date()
    return occurred if isinstance(occurred, date) else normalise_dob(occurred)


class AgeBand(Operator[AgeBandParams]):
    name = "age_band"
    params_model = AgeBandParams

    def output_type(self, params: AgeBandParams, input_type: Any) -> str:
        if avro_kind(input_type) not in ("date", "string"):
            raise self._refuse(input_type, "a date (or date string) field")
        return "string"

    def bind(self, params: AgeBandParams, ctx: BindContext) -> Transform:
        bounds, labels = params.bands, band_labels(params.bands)

        def age_band(value: Any, event: Mapping[str, Any]) -> str:
            dob = value if type(value) is date else normalise_dob(value)
            on = event_date(event)
            age = on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))
            if age < 0:
                raise InvalidIdentifier("date_of_birth", "is after the event date")
            return labels[bisect_right(bounds, age)]

        return age_band
