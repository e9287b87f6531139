"""keep and drop: release a field's value as it is, or leave the field out of the output altogether.

`keep` is for a field the agreement has judged necessary; `drop` is minimisation, and the default
for any field no rule selects. Neither takes parameters.
"""

from __future__ import annotations

from typing import Any

from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform


class NoParams(OperatorParams):
    """An operator without parameters: any key given is refused."""


class Keep(Operator[NoParams]):
    name = "keep"
    params_model = NoParams

    def output_type(self, params: NoParams, input_type: Any) -> Any:
        return input_type

    def bind(self, params: NoParams, ctx: BindContext) -> Transform:
        return lambda value, event: value


class Drop(Operator[NoParams]):
    name = "drop"
    params_model = NoParams

    def output_type(self, params: NoParams, input_type: Any) -> None:
        return None

    def bind(self, params: NoParams, ctx: BindContext) -> Transform:
        """Never needed by a plan (the field is not in the output); returns None for completeness."""
        return lambda value, event: None
