"""keep: release the value unchanged (the agreement has judged this field necessary)."""

from __future__ import annotations

from typing import Any

from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform


class KeepParams(OperatorParams):
    pass


class Keep(Operator[KeepParams]):
    name = "keep"
    params_model = KeepParams

    def output_type(self, params: KeepParams, input_type: Any) -> Any:
        return input_type

    def bind(self, params: KeepParams, ctx: BindContext) -> Transform:
        return lambda value, event: value
