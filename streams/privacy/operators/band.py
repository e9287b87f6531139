"""band: a number -> a labelled band ("<10", "10-<50", "50+"), for measures too precise to share.

`edges` are the lower bounds of the bands after the first; bands are half-open [a, b). Custom
`labels` need one more entry than `edges` (the band below the first edge comes first).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import pairwise
from typing import Any

from pydantic import Field, model_validator

from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform, avro_kind


class BandParams(OperatorParams):
    edges: tuple[float, ...] = Field(min_length=1)
    labels: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BandParams:
        if any(b <= a for a, b in pairwise(self.edges)):
            raise ValueError("'edges' must be strictly increasing")
        if self.labels is not None and len(self.labels) != len(self.edges) + 1:
            raise ValueError("'labels' needs exactly one more entry than 'edges'")
        return self

    def resolved_labels(self) -> tuple[str, ...]:
        if self.labels is not None:
            return self.labels
        e = [f"{x:g}" for x in self.edges]
        return (f"<{e[0]}", *(f"{a}-<{b}" for a, b in pairwise(e)), f"{e[-1]}+")


class Band(Operator[BandParams]):
    name = "band"
    params_model = BandParams

    def output_type(self, params: BandParams, input_type: Any) -> str:
        if avro_kind(input_type) not in ("int", "long", "float", "double"):
            raise self._refuse(input_type, "a numeric field")
        return "string"

    def bind(self, params: BandParams, ctx: BindContext) -> Transform:
        edges, labels = params.edges, params.resolved_labels()
        return lambda value, event: labels[bisect_right(edges, value)]
