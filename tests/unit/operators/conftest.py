"""Shared fixtures for operator tests: a fixed key ring, a bind-context factory, a tiny area lookup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.privacy.areas import Area, AreaLookup
from streams.privacy.keys import KeyRing
from streams.privacy.operators import BindContext, Transform, get_operator, parse_params

from ._support import KEY


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.from_secrets({"k1": KEY}, active="k1")


@pytest.fixture
def areas() -> AreaLookup:
    return AreaLookup(
        [
            Area("RG1", "E01016300", 51.4540, -0.9730),
            Area("RG1", "E01016301", 51.4480, -0.9600),
            Area("RG1", "E01016302", 51.4600, -0.9850),
            Area("OX4", "E01028700", 51.7350, -1.2150),
        ]
    )


@pytest.fixture
def ctx_factory(keyring: KeyRing, areas: AreaLookup) -> Callable[..., BindContext]:
    def make(input_type: Any = "string", **overrides: Any) -> BindContext:
        values: dict[str, Any] = {
            "recipient": "vru_analysts",
            "domain": "recipient:vru_analysts",
            "keyring": keyring,
            "field_path": "subject.field",
            "input_type": input_type,
            "area_lookup": areas,
        }
        values.update(overrides)
        return BindContext(**values)

    return make


@pytest.fixture
def bind(ctx_factory: Callable[..., BindContext]) -> Callable[..., Transform]:
    """bind("round", {"base": 5}, "int") -> the transform, going through the registry like a plan does."""

    def make(
        name: str, raw: dict[str, Any] | None = None, input_type: Any = "string", **ctx: Any
    ) -> Transform:
        params = parse_params(name, raw or {})
        op = get_operator(name)
        op.output_type(params, input_type)
        return op.bind(params, ctx_factory(input_type, **ctx))

    return make
