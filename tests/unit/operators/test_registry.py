"""Registry: names from class attributes, params validated once with errors naming the key."""

from __future__ import annotations

import pytest

from streams.errors import ConfigurationError
from streams.privacy.operators import OPERATORS, Operator, OperatorParams, get_operator, parse_params

ALL = {
    "keep",
    "drop",
    "redact",
    "pseudonymise",
    "age_band",
    "truncate_date",
    "postcode_district",
    "area_lookup",
    "round",
    "band",
}


def test_registry_lists_every_operator_by_class_name() -> None:
    assert set(OPERATORS) == ALL
    for name, cls in OPERATORS.items():
        assert cls.name == name and issubclass(cls, Operator)
        assert issubclass(cls.params_model, OperatorParams)


def test_get_operator_shares_instances_and_refuses_unknown() -> None:
    assert get_operator("keep") is get_operator("keep")
    with pytest.raises(ConfigurationError, match="unknown operator 'hash'"):
        get_operator("hash")
    with pytest.raises(ConfigurationError, match="unknown operator"):
        parse_params("hash", {})


@pytest.mark.parametrize(
    ("name", "raw", "key"),
    [
        ("keep", {"extra": 1}, "extra"),
        ("redact", {"replacment": "x"}, "replacment"),
        ("pseudonymise", {"identifier": "passport"}, "identifier"),
        ("pseudonymise", {}, "identifier"),
        ("pseudonymise", {"identifier": "upn", "domain": "bus:linkage"}, "domain"),
        ("pseudonymise", {"identifier": "upn", "domain": "a b"}, "domain"),
        ("age_band", {"bands": [0, 18, 10]}, "bands"),
        ("age_band", {"bands": []}, "bands"),
        ("age_band", {"bands": [-1, 10]}, "bands"),
        ("truncate_date", {"unit": "hour"}, "unit"),
        ("truncate_date", {"unit": "month", "timezone": "Mars/Olympus"}, "timezone"),
        ("postcode_district", {"level": "street"}, "level"),
        ("area_lookup", {"source": "what3words"}, "source"),
        ("area_lookup", {"source": "latlon", "max_km": 0}, "max_km"),
        ("round", {"base": -5}, "base"),
        ("band", {"edges": [5, 1]}, "edges"),
    ],
)
def test_bad_params_name_operator_and_key(name: str, raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_params(name, raw)
    assert f"operator {name!r}" in str(info.value) and key in str(info.value)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("round", {}), ("round", {"base": 5, "decimals": 2}), ("band", {"edges": [1, 2], "labels": ["a"]})],
)
def test_cross_field_rules_rejected(name: str, raw: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match=f"operator '{name}'"):
        parse_params(name, raw)


def test_params_are_frozen_and_not_a_mapping_rejected() -> None:
    params = parse_params("round", {"base": 5})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        params.base = 10  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="mapping"):
        parse_params("round", [("base", 5)])  # type: ignore[arg-type]
    assert parse_params("keep", None) == parse_params("keep", {})
