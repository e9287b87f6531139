"""postcode_district: area, district (= outward) or sector."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streams.errors import ConfigurationError
from streams.privacy.identifiers import InvalidIdentifier
from streams.privacy.operators import Transform, get_operator, parse_params


@pytest.mark.parametrize(
    ("level", "expected"), [("area", "RG"), ("outward", "RG1"), ("district", "RG1"), ("sector", "RG1 2")]
)
def test_levels(bind: Callable[..., Transform], level: str, expected: str) -> None:
    assert bind("postcode_district", {"level": level})("rg12ab", {}) == expected


def test_default_is_district(bind: Callable[..., Transform]) -> None:
    assert bind("postcode_district")("EC1A 1BB", {}) == "EC1A"


def test_invalid_postcode(bind: Callable[..., Transform]) -> None:
    with pytest.raises(InvalidIdentifier):
        bind("postcode_district")("not a postcode", {})


def test_output_type() -> None:
    op, params = get_operator("postcode_district"), parse_params("postcode_district", {})
    assert op.output_type(params, "string") == "string"
    with pytest.raises(ConfigurationError):
        op.output_type(params, "double")
