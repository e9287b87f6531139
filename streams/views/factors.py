"""The risk/protective factor catalogue (`factors.yaml`) compiled into a per-event extractor.

Every event type, field path and enum symbol a rule names is checked against the schema catalogue
when the catalogue loads, so a typo fails the worker at start with the file and key named instead of
silently never matching. Rules compile once into closures; `extract` only reads a few fields.

Factors marked `requires_linked_adult` (parental offending: a parent's probation event evidences a
risk for the child) are validated but never extracted: that needs the adult linked to the child as
a household member, which no agreement allows yet. Factors marked `aggregate_only` may only come
from anonymous event types (no `subject`), so they can reach area counts but never a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from streams.avro import paths
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.avro.event_types import PRIMITIVES, EventType
from streams.errors import ConfigurationError
from streams.files import read_yaml
from streams.privacy.identifiers import InvalidIdentifier, postcode_district

__all__ = ["Fact", "FactorCatalogue", "FactorDef", "FactorExtractor", "Rule", "load_factors"]

Scalar = bool | int | str
Domain = Literal["individual", "family", "school", "peer", "community"]


class Condition(BaseModel):
    """The mapping form of a condition (the list and scalar forms need no model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    contains_any: list[str] | None = None
    gte: float | None = None
    lte: float | None = None
    present: bool | None = None


ConditionSpec = list[Scalar] | Scalar | Condition


class FactorDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["R", "P"]
    domain: Domain
    label: str = Field(min_length=1)
    description: str = Field(min_length=1)
    weight: float = Field(gt=0)
    requires_linked_adult: bool = False
    aggregate_only: bool = False

    @property
    def signed_weight(self) -> float:
        """Protective factors subtract from a score."""
        return self.weight if self.kind == "R" else -self.weight


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1)
    event_type: str
    when: dict[str, ConditionSpec] = Field(default_factory=dict)
    when_any: dict[str, ConditionSpec] = Field(default_factory=dict)
    factors: list[str] = Field(min_length=1)


class FactorCatalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    half_life_days: float = Field(180.0, gt=0)
    factors: dict[str, FactorDef]
    rules: list[Rule]


class Fact(NamedTuple):
    """What one event says about one subject (contract: docs/contracts.md, `link.identifiers`).

    A NamedTuple: built ~1.2 times per enforced event, and a frozen dataclass's __init__ cost more.
    """

    subject_index: int
    role: str | None
    factors: tuple[str, ...]
    lsoa: str | None
    district: str | None


Predicate = Callable[[Mapping[str, Any], Mapping[str, Any] | None], bool]


@dataclass(frozen=True)
class _CompiledRule:
    test: Predicate
    factors: frozenset[str]


class FactorExtractor:
    """Compiled rules per event type; `extract` returns one Fact per subject, in subject order.

    Events listing people (`people[]`) give one Fact per person (its index and role); other events
    give one Fact with index 0, also when they carry no subject (area counts still need them).
    """

    def __init__(
        self, catalogue: FactorCatalogue, rules: Mapping[str, list[_CompiledRule]], people: str | None
    ):
        self.catalogue = catalogue
        self._rules = dict(rules)
        self._people = people

    @property
    def factors(self) -> Mapping[str, FactorDef]:
        return self.catalogue.factors

    def weights(self) -> dict[str, float]:
        """Signed weights (protective factors negative) for `streams.views.profiles.score`."""
        return {name: f.signed_weight for name, f in self.catalogue.factors.items()}

    def extract(self, event_type: str, event: Mapping[str, Any]) -> list[Fact]:
        rules = self._rules.get(event_type, ())
        location = event.get("location") or {}
        lsoa = location.get("lsoa_code") or None
        district = _district(location.get("postcode"))
        people = event.get(self._people) if self._people else None
        if isinstance(people, list) and people:
            return [
                Fact(
                    i,
                    _role(person),
                    _match(rules, event, person),
                    lsoa,
                    district or _district(((person or {}).get("subject") or {}).get("postcode")),
                )
                for i, person in enumerate(people)
            ]
        subject = event.get("subject") or {}
        return [
            Fact(0, None, _match(rules, event, None), lsoa, district or _district(subject.get("postcode")))
        ]


def _match(
    rules: Iterable[_CompiledRule], event: Mapping[str, Any], item: Mapping[str, Any] | None
) -> tuple[str, ...]:
    found: frozenset[str] | None = None
    for rule in rules:
        if rule.test(event, item):
            found = rule.factors if found is None else found | rule.factors
    return () if found is None else tuple(sorted(found))


def _role(person: Any) -> str | None:
    role = person.get("role") if type(person) is dict or isinstance(person, Mapping) else None
    return role.lower() if isinstance(role, str) else None


def _district(postcode: Any) -> str | None:
    if not postcode or type(postcode) is not str:
        return None
    return _district_of(postcode)


@lru_cache(maxsize=65536)
def _district_of(postcode: str) -> str | None:
    """Cached: the same postcodes recur in every event about a place or person."""
    try:
        return postcode_district(postcode)
    except InvalidIdentifier:
        return None


# --- loading ------------------------------------------------------------------------------------


def load_factors(path: Path | str, catalogue: Catalogue | None = None) -> FactorExtractor:
    """Load `factors.yaml`, check it against the schema catalogue, compile it once."""
    path = Path(path)
    catalogue = catalogue or load_catalogue()
    raw = read_yaml(path)
    try:
        model = FactorCatalogue.model_validate(raw)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigurationError(f"{path}: {where}: {err['msg']}") from None
    return _compile(path, model, catalogue)


def _compile(path: Path, model: FactorCatalogue, catalogue: Catalogue) -> FactorExtractor:
    people_paths: set[str] = set()
    compiled: dict[str, list[_CompiledRule]] = {}
    used: set[str] = set()
    ids: set[str] = set()
    for i, rule in enumerate(model.rules):
        where = f"{path}: rules[{i}] ({rule.id})"
        if rule.id in ids:
            raise ConfigurationError(f"{where}: duplicate rule id")
        ids.add(rule.id)
        if rule.event_type not in catalogue.event_types:
            raise ConfigurationError(f"{where}.event_type: unknown event type {rule.event_type!r}")
        et = catalogue.event_types[rule.event_type]
        people = _people_array(et)
        if people:
            people_paths.add(people)
        for name in rule.factors:
            factor = model.factors.get(name)
            if factor is None:
                raise ConfigurationError(f"{where}.factors: unknown factor {name!r}")
            if factor.aggregate_only and et.has_subject:
                raise ConfigurationError(
                    f"{where}.factors: {name} is aggregate_only but {et.name} has a subject"
                )
        used.update(rule.factors)
        extracted = frozenset(f for f in rule.factors if not model.factors[f].requires_linked_adult)
        all_of = [_condition(f"{where}.when.{p}", et, people, p, s) for p, s in rule.when.items()]
        any_of = [_condition(f"{where}.when_any.{p}", et, people, p, s) for p, s in rule.when_any.items()]
        if extracted:
            compiled.setdefault(et.name, []).append(_CompiledRule(_combine(all_of, any_of), extracted))
    unused = sorted(set(model.factors) - used)
    if unused:
        raise ConfigurationError(f"{path}: factors: {', '.join(unused)} have no rule")
    if len(people_paths) > 1:
        raise ConfigurationError(
            f"{path}: event types list people under different names {sorted(people_paths)}"
        )
    return FactorExtractor(model, compiled, next(iter(people_paths), "people"))


def _people_array(et: EventType) -> str | None:
    """The array of people records (items with a `subject`), if the event type has one."""
    for p in et.fields:
        if p.endswith("[].subject") and p.count("[]") == 1:
            return p[: -len("[].subject")]
    return None


def _combine(all_of: list[Predicate], any_of: list[Predicate]) -> Predicate:
    # Plain loops, and the single-condition rule returned as is: every rule of an event type runs
    # on every event, and generator expressions in all()/any() cost a frame per call.
    if len(all_of) == 1 and not any_of:
        return all_of[0]

    def test(event: Mapping[str, Any], item: Mapping[str, Any] | None) -> bool:
        for p in all_of:
            if not p(event, item):
                return False
        if not any_of:
            return True
        for p in any_of:  # noqa: SIM110 (a loop: no generator object per event)
            if p(event, item):
                return True
        return False

    return test


def _condition(where: str, et: EventType, people: str | None, path: str, spec: ConditionSpec) -> Predicate:
    info = et.fields.get(path)
    if info is None:
        raise ConfigurationError(f"{where}: {et.name} has no field {path!r}")
    per_person = people is not None and path.startswith(f"{people}[].")
    if "[]" in path and not per_person:
        raise ConfigurationError(f"{where}: only the people array ({people}[]) can be matched per item")
    get = paths.getter(path[len(f"{people}[].") :] if per_person else path)
    test = _value_test(where, et, info.avro_type, spec)
    if per_person:
        return lambda _event, item: item is not None and test(get(item))
    return lambda event, _item: test(get(event))


def _value_test(where: str, et: EventType, avro_type: Any, spec: ConditionSpec) -> Callable[[Any], bool]:
    kind = _kind(avro_type)
    if isinstance(spec, Condition):
        return _mapping_test(where, et, avro_type, kind, spec)
    values = spec if isinstance(spec, list) else [spec]
    if kind == "array":
        raise ConfigurationError(f"{where}: array field: use {{contains_any: [...]}}")
    for v in values:
        _check_value(where, et, avro_type, kind, v)
    if kind == "boolean":
        wanted = frozenset(bool(v) for v in values)
        return lambda v: isinstance(v, bool) and v in wanted
    allowed = frozenset(values)
    return lambda v: v is not None and not isinstance(v, bool) and v in allowed


def _mapping_test(
    where: str, et: EventType, avro_type: Any, kind: str, spec: Condition
) -> Callable[[Any], bool]:
    set_keys = [k for k, v in spec.model_dump().items() if v is not None]
    if len(set_keys) != 1:
        raise ConfigurationError(f"{where}: give exactly one of contains_any, gte, lte, present")
    if spec.present is not None:
        present = spec.present
        return lambda v: (v is not None) == present
    if spec.contains_any is not None:
        if kind != "array":
            raise ConfigurationError(f"{where}: contains_any needs an array field, not {kind}")
        items = avro_type["items"]
        for v in spec.contains_any:
            _check_value(where, et, items, _kind(items), v)
        wanted = frozenset(spec.contains_any)
        return lambda v: isinstance(v, list) and not wanted.isdisjoint(v)
    if kind not in ("int", "long", "float", "double"):
        raise ConfigurationError(f"{where}: gte/lte need a number field, not {kind}")
    if spec.gte is not None:
        low = spec.gte
        return lambda v: _number(v) and v >= low
    high = spec.lte
    return lambda v: _number(v) and high is not None and v <= high


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _kind(avro_type: Any) -> str:
    if isinstance(avro_type, dict):
        return str(avro_type.get("type"))
    return str(avro_type)


def _check_value(where: str, et: EventType, avro_type: Any, kind: str, value: Scalar) -> None:
    if kind == "enum" or (isinstance(avro_type, str) and avro_type not in PRIMITIVES):
        symbols = _enum_symbols(et, avro_type)
        if value not in symbols:
            raise ConfigurationError(f"{where}: {value!r} is not one of {', '.join(symbols)}")
        return
    check = _PRIMITIVE_CHECKS.get(kind)
    if check is None:
        raise ConfigurationError(f"{where}: cannot match a {kind} field")
    if not check(value):
        raise ConfigurationError(f"{where}: {value!r} is not a {kind}")


_PRIMITIVE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def _enum_symbols(et: EventType, avro_type: Any) -> list[str]:
    """Symbols of an inline enum, or of a named enum defined elsewhere in the event's schema."""
    if isinstance(avro_type, dict):
        return list(avro_type.get("symbols", []))
    name = str(avro_type).rsplit(".", 1)[-1]
    stack: list[Any] = [et.schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "enum" and str(node.get("name", "")).rsplit(".", 1)[-1] == name:
                return list(node.get("symbols", []))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return []
