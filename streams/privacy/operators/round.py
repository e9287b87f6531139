"""round: numbers to a base (counts to 5) or to decimals (coordinates to 2 dp, about 1 km).

Halves round away from zero, not to even: disclosure-control rounding must not depend on parity.
Integers stay integers (the base must then be a whole number); the output type is the input type.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from streams.errors import ConfigurationError
from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform, avro_kind

_INTEGER, _REAL = ("int", "long"), ("float", "double")


class RoundParams(OperatorParams):
    base: float | None = Field(None, gt=0)
    decimals: int | None = Field(None, ge=0, le=10)

    @model_validator(mode="after")
    def _exactly_one(self) -> RoundParams:
        if (self.base is None) == (self.decimals is None):
            raise ValueError("give exactly one of 'base' or 'decimals'")
        return self

    @property
    def step(self) -> Decimal:
        return Decimal(repr(self.base)) if self.base is not None else Decimal(1).scaleb(-(self.decimals or 0))


def _half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


class Round(Operator[RoundParams]):
    name = "round"
    params_model = RoundParams

    def output_type(self, params: RoundParams, input_type: Any) -> Any:
        kind = avro_kind(input_type)
        if kind not in _INTEGER + _REAL:
            raise self._refuse(input_type, "a numeric field")
        if kind in _INTEGER and params.step != params.step.to_integral_value():
            msg = f"operator 'round' on an integer field needs a whole 'base', not {params.step}"
            raise ConfigurationError(msg)
        return input_type

    def bind(self, params: RoundParams, ctx: BindContext) -> Transform:
        step = params.step
        exponent = step.normalize().as_tuple().exponent
        places = max(0, -exponent) if isinstance(exponent, int) else 0
        fstep = float(step)
        if avro_kind(ctx.input_type) in _INTEGER:
            istep = int(step)
            return lambda value, event: int(_half_away(value / istep)) * istep
        return lambda value, event: round(_half_away(value / fstep) * fstep, places)
