"""area_lookup: postcode or coordinates -> LSOA code, so a location is shared as an area.

`source: postcode` reads the field's own value. `source: latlon` reads the coordinates from the
event at `latitude`/`longitude` (dotted record paths) whichever field it is attached to, and maps
them to the nearest LSOA centroid within `max_km` (beyond it the point is outside the lookup's
coverage and is refused rather than mislabelled).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from streams.avro import paths
from streams.avro.paths import SCALAR_PATH
from streams.errors import ConfigurationError, ValidationError
from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform, avro_kind


class AreaLookupParams(OperatorParams):
    source: Literal["postcode", "latlon"]
    latitude: str = Field("location.latitude", pattern=SCALAR_PATH)
    longitude: str = Field("location.longitude", pattern=SCALAR_PATH)
    max_km: float = Field(10.0, gt=0)


class AreaLookupOp(Operator[AreaLookupParams]):
    name = "area_lookup"
    params_model = AreaLookupParams

    def output_type(self, params: AreaLookupParams, input_type: Any) -> str:
        wanted = ("string",) if params.source == "postcode" else ("float", "double", "string")
        if avro_kind(input_type) not in wanted:
            raise self._refuse(input_type, f"a {' or '.join(wanted)} field")
        return "string"

    def bind(self, params: AreaLookupParams, ctx: BindContext) -> Transform:
        areas, field = ctx.area_lookup, ctx.field_path
        if areas is None:
            raise ConfigurationError(f"{field}: operator 'area_lookup' needs an area lookup file")
        if params.source == "postcode":

            def by_postcode(value: Any, event: Mapping[str, Any]) -> str:
                code = areas.lsoa_for_postcode(value)
                if code is None:
                    raise ValidationError(field, "postcode district not covered by the area lookup")
                return code

            return by_postcode
        lat_of, lon_of, max_km = paths.getter(params.latitude), paths.getter(params.longitude), params.max_km

        def by_point(value: Any, event: Mapping[str, Any]) -> str:
            lat, lon = lat_of(event), lon_of(event)
            if not isinstance(lat, int | float) or not isinstance(lon, int | float):
                raise ValidationError(field, "latitude/longitude missing")
            code = areas.nearest(float(lat), float(lon), max_km)
            if code is None:
                raise ValidationError(field, f"no LSOA centroid within {max_km:g} km")
            return code

        return by_point
