"""round and band: numeric coarsening."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streams.errors import ConfigurationError
from streams.privacy.operators import Transform, get_operator, parse_params


@pytest.mark.parametrize(
    ("raw", "input_type", "value", "expected"),
    [
        ({"base": 5}, "int", 12, 10),
        ({"base": 5}, "int", 13, 15),
        ({"base": 5}, "long", 22, 20),
        ({"base": 5}, "int", 7, 5),
        ({"base": 10}, "int", 15, 20),  # half away from zero, not to even
        ({"base": 10}, "int", 25, 30),
        ({"base": 10}, "int", -15, -20),
        ({"decimals": 2}, "double", 51.45678, 51.46),
        ({"decimals": 2}, "double", -0.97321, -0.97),
        ({"base": 0.05}, "double", 51.47, 51.45),
        ({"decimals": 0}, "float", 2.5, 3.0),
    ],
)
def test_round(
    bind: Callable[..., Transform], raw: dict[str, float], input_type: str, value: float, expected: float
) -> None:
    out = bind("round", raw, input_type)(value, {})
    assert out == expected and type(out) is type(expected)


def test_round_output_type_is_input_type() -> None:
    op = get_operator("round")
    assert op.output_type(parse_params("round", {"base": 5}), "long") == "long"
    assert op.output_type(parse_params("round", {"decimals": 3}), "double") == "double"
    with pytest.raises(ConfigurationError, match="whole"):
        op.output_type(parse_params("round", {"base": 0.5}), "int")
    with pytest.raises(ConfigurationError, match="numeric"):
        op.output_type(parse_params("round", {"base": 5}), "string")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "<10"), (9.99, "<10"), (10, "10-<50"), (49, "10-<50"), (50, "50+"), (1e9, "50+")],
)
def test_band_default_labels(bind: Callable[..., Transform], value: float, expected: str) -> None:
    assert bind("band", {"edges": [10, 50]}, "double")(value, {}) == expected


def test_band_custom_labels(bind: Callable[..., Transform]) -> None:
    t = bind("band", {"edges": [10, 50], "labels": ["low", "persistent", "severe"]}, "int")
    assert [t(v, {}) for v in (3, 10, 50)] == ["low", "persistent", "severe"]
    assert bind("band", {"edges": [0.5]}, "double")(0.25, {}) == "<0.5"


def test_band_output_type() -> None:
    op, params = get_operator("band"), parse_params("band", {"edges": [1]})
    assert op.output_type(params, "int") == "string"
    with pytest.raises(ConfigurationError):
        op.output_type(params, "string")
