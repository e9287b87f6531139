"""drop: remove the field from the output record altogether (minimisation by default)."""

from __future__ import annotations

from typing import Any

from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform


class DropParams(OperatorParams):
    pass


class Drop(Operator[DropParams]):
    name = "drop"
    params_model = DropParams

    def output_type(self, params: DropParams, input_type: Any) -> None:
        return None

    def bind(self, params: DropParams, ctx: BindContext) -> Transform:
        """Never needed by a plan (the field is not in the output); returns None for completeness."""
        return lambda value, event: None
