"""pseudonymise: validated identifier -> keyed token "<kid>.<26 base32 chars>" in the plan's domain.

The value is normalised and validated first (a mistyped NHS number must not become a new person);
failures raise InvalidIdentifier and the plan's `on_invalid` decides. The domain is the recipient's
(or purpose's) unless overridden; the bus-internal "bus:" domains cannot be chosen by an agreement,
since releasing linkage tokens would let recipients join their data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator

from streams import metrics
from streams.privacy.identifiers import NORMALISERS
from streams.privacy.operators.base import BindContext, Operator, OperatorParams, Transform, avro_kind

IdentifierKind = Literal[
    "nhs_number", "upn", "pnc_id", "local_id", "name", "date_of_birth", "postcode", "value"
]


class PseudonymiseParams(OperatorParams):
    identifier: IdentifierKind
    domain: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")

    @field_validator("domain")
    @classmethod
    def _not_internal(cls, v: str | None) -> str | None:
        if v is not None and v.startswith("bus:"):
            raise ValueError("bus-internal domains cannot be released to a recipient")
        return v


def _as_text(value: Any) -> str:
    """Normaliser for identifier 'value': any scalar, as text without surrounding whitespace."""
    return value.strip() if isinstance(value, str) else str(value)


class Pseudonymise(Operator[PseudonymiseParams]):
    name = "pseudonymise"
    params_model = PseudonymiseParams

    def output_type(self, params: PseudonymiseParams, input_type: Any) -> str:
        if avro_kind(input_type) in ("record", "array", "map", "union"):
            raise self._refuse(input_type, "a scalar field")
        return "string"

    def bind(self, params: PseudonymiseParams, ctx: BindContext) -> Transform:
        normalise = NORMALISERS.get(params.identifier, _as_text)
        token = ctx.keyring.tokenizer(params.domain or ctx.domain, params.identifier)
        computed = metrics.PSEUDONYMISATIONS.labels(kind=params.identifier)

        # People recur across events: a bounded memo of value -> token saves the normalisation and
        # the HMAC. It lives as long as this compiled plan (a key rotation
        # compiles new plans). Invalid identifiers raise and are never cached.
        @lru_cache(maxsize=16384)
        def pseudonym(value: Any) -> str:
            result = token(normalise(value))
            computed.inc()
            return result

        return lambda value, event: pseudonym(value)
