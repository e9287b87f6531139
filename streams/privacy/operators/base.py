"""The operator contract: typed params validated once, bound into a plain per-event function.

Taken from Presidio's anonymizer operators, minus its weak spots: params are a frozen pydantic
model checked when a plan compiles (not an untyped dict checked per call), and `bind` does every
lookup up front so the returned closure does only the per-value work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from streams.errors import ConfigurationError
from streams.privacy.areas import AreaLookup
from streams.privacy.keys import KeyRing

__all__ = ["BindContext", "Operator", "OperatorParams", "Transform", "avro_kind"]


class OperatorParams(BaseModel):
    """Base of every params model: unknown keys are refused, values cannot change after compile."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BindContext:
    """What a transform may depend on besides its params; fixed when a plan compiles."""

    recipient: str
    domain: str  # pseudonym domain, e.g. "recipient:vru_analysts", "purpose:...", "bus:linkage"
    keyring: KeyRing
    field_path: str
    input_type: Any  # FieldInfo.avro_type of the input field (["null", T] already reduced to T)
    area_lookup: AreaLookup | None


Transform = Callable[[Any, Mapping[str, Any]], Any]  # (value, whole decoded event) -> new value

P = TypeVar("P", bound=OperatorParams)


class Operator(ABC, Generic[P]):
    """One field transformation. Stateless: one instance serves every plan."""

    name: ClassVar[str]
    params_model: ClassVar[type[OperatorParams]]

    @abstractmethod
    def output_type(self, params: P, input_type: Any) -> Any | None:
        """Avro type of the output for `input_type` (None: the field is removed).

        Raises ConfigurationError when the operator cannot apply to `input_type`, so a plan that
        would fail on every event fails when it compiles instead.
        """

    @abstractmethod
    def bind(self, params: P, ctx: BindContext) -> Transform:
        """A closure with everything precomputed; never called with None."""

    def _refuse(self, input_type: Any, wants: str) -> ConfigurationError:
        return ConfigurationError(f"operator {self.name!r} needs {wants}, not {avro_kind(input_type)!r}")


def avro_kind(avro_type: Any) -> str:
    """'string', 'int', 'double', 'date', 'timestamp-millis', 'record', ... for a (non-union) Avro type."""
    if isinstance(avro_type, str):
        return avro_type
    if isinstance(avro_type, dict):
        return str(avro_type.get("logicalType") or avro_type.get("type"))
    if isinstance(avro_type, list):
        return "union"
    return type(avro_type).__name__
