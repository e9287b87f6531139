"""redact: keep the field's presence but replace its content, e.g. free text -> "[REDACTED]".

With `replacement: null` the output type is Avro "null": the field stays in the schema (so
recipients see that something was there) but never carries a value. Callers must not wrap a
"null" output in a ["null", ...] union.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform


class RedactParams(OperatorParams):
    replacement: str | None = Field("[REDACTED]", max_length=64)


class Redact(Operator[RedactParams]):
    name = "redact"
    params_model = RedactParams

    def output_type(self, params: RedactParams, input_type: Any) -> str:
        return "null" if params.replacement is None else "string"

    def bind(self, params: RedactParams, ctx: BindContext) -> Transform:
        replacement = params.replacement
        return lambda value, event: replacement
