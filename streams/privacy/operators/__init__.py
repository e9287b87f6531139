"""Field operators, found by name. The registry reads each class's `name` attribute: no instances,
no import-time discovery; adding an operator means adding its class and one line below."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from streams.errors import ConfigurationError
from streams.privacy.operators.age_band import AgeBand
from streams.privacy.operators.area_lookup import AreaLookupOp
from streams.privacy.operators.band import Band
from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform
from streams.privacy.operators.keep_drop import Drop, Keep
from streams.privacy.operators.postcode_district import PostcodeDistrict
from streams.privacy.operators.pseudonymise import Pseudonymise
from streams.privacy.operators.redact import Redact
from streams.privacy.operators.round import Round
from streams.privacy.operators.truncate_date import TruncateDate

__all__ = [
    "OPERATORS",
    "BindContext",
    "Operator",
    "OperatorParams",
    "Transform",
    "get_operator",
    "parse_params",
]

_CLASSES: tuple[type[Operator[Any]], ...] = (
    Keep,
    Drop,
    Redact,
    Pseudonymise,
    AgeBand,
    TruncateDate,
    PostcodeDistrict,
    AreaLookupOp,
    Round,
    Band,
)
OPERATORS: dict[str, type[Operator[Any]]] = {cls.name: cls for cls in _CLASSES}
_INSTANCES: dict[str, Operator[Any]] = {}


def _known(name: str) -> type[Operator[Any]]:
    try:
        return OPERATORS[name]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"unknown operator {name!r} (known: {', '.join(sorted(OPERATORS))})"
        ) from None


def get_operator(name: str) -> Operator[Any]:
    """The (stateless, shared) operator called `name`; ConfigurationError if unknown."""
    if name not in _INSTANCES:
        _INSTANCES[name] = _known(name)()
    return _INSTANCES[name]


def parse_params(name: str, raw: Mapping[str, Any] | None) -> OperatorParams:
    """Validate `raw` once, at compile time; the error names the operator and the offending key."""
    model = _known(name).params_model
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigurationError(f"operator {name!r}: parameters must be a mapping")
    try:
        return model.model_validate(dict(raw or {}))
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(parameters)"
        raise ConfigurationError(f"operator {name!r}: parameter {key!r}: {err['msg']}") from None
