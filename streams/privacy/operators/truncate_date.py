"""truncate_date: date or timestamp -> its day ("2026-03-14"), week ("2026-W11"), month ("2026-03")
or year ("2026").

police.uk publishes crime by month; anything public should be no finer. Every envelope time goes
through this operator too (day for individual-tier recipients, month for area tier): a time to the
second lets recipients join their data on it. Timestamps are read in UK
local time (configurable) so an incident at 00:30 BST on 1 April is April, not March.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator

from streams.errors import ValidationError
from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform, avro_kind

_INPUTS = ("date", "timestamp-millis", "timestamp-micros", "string")
_FORMATS: dict[str, Callable[[date], str]] = {
    "day": lambda d: d.isoformat(),
    "week": lambda d: "{}-W{:02d}".format(*d.isocalendar()[:2]),
    "month": lambda d: f"{d.year:04d}-{d.month:02d}",
    "year": lambda d: f"{d.year:04d}",
}


class TruncateDateParams(OperatorParams):
    unit: Literal["day", "week", "month", "year"]
    timezone: str = "Europe/London"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return v


class TruncateDate(Operator[TruncateDateParams]):
    name = "truncate_date"
    params_model = TruncateDateParams

    def output_type(self, params: TruncateDateParams, input_type: Any) -> str:
        if avro_kind(input_type) not in _INPUTS:
            raise self._refuse(input_type, "a date, timestamp or ISO date string field")
        return "string"

    def bind(self, params: TruncateDateParams, ctx: BindContext) -> Transform:
        fmt, zone, field = _FORMATS[params.unit], ZoneInfo(params.timezone), ctx.field_path

        def truncate(value: Any, event: Any) -> str:
            if isinstance(value, datetime):
                return fmt(value.astimezone(zone).date() if value.tzinfo else value.date())
            if isinstance(value, date):
                return fmt(value)
            try:
                return fmt(date.fromisoformat(str(value)[:10]))
            except ValueError:
                raise ValidationError(field, "not an ISO date") from None

        return truncate
