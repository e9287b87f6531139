"""postcode_district: coarsen a postcode to its area, district (= outward code) or sector.

"outward" and "district" are the same thing ("RG1"); both names are accepted because s.17A
regulations speak of the "outward part of a postcode".
"""

from __future__ import annotations

from typing import Any, Literal

from streams.privacy.identifiers import postcode_area, postcode_district, postcode_sector
from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform, avro_kind

_LEVELS = {
    "area": postcode_area,
    "outward": postcode_district,
    "district": postcode_district,
    "sector": postcode_sector,
}


class PostcodeDistrictParams(OperatorParams):
    level: Literal["area", "outward", "district", "sector"] = "district"


class PostcodeDistrict(Operator[PostcodeDistrictParams]):
    name = "postcode_district"
    params_model = PostcodeDistrictParams

    def output_type(self, params: PostcodeDistrictParams, input_type: Any) -> str:
        if avro_kind(input_type) != "string":
            raise self._refuse(input_type, "a string field")
        return "string"

    def bind(self, params: PostcodeDistrictParams, ctx: BindContext) -> Transform:
        coarsen = _LEVELS[params.level]
        return lambda value, event: coarsen(value)
