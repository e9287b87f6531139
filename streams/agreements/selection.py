"""Which treatment each field of an event type gets under one agreement: selectors to field rules.

Precedence: an exact path beats a tag, a tag beats a parent path, and anything not selected is
dropped (deny by default). The envelope is always released, its times (`ENVELOPE_TIMES`)
generalised like any other quasi-identifier: to `time_unit` (the recipient's tier decides it)
unless the agreement gives them a `truncate_date` of its own. Params are validated here
with each operator's own model, and the operator's `output_type` is asked once per field so a
treatment that cannot apply to a field's type fails when the agreement is checked, not per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from streams.agreements.model import EventTypeRule, Treatment
from streams.agreements.tree import Node, leaves, walk
from streams.avro.event_types import TAG_VALUES
from streams.errors import ConfigurationError
from streams.privacy.operators import OperatorParams, get_operator, parse_params
from streams.privacy.operators.base import avro_kind

__all__ = ["ENVELOPE_TIMES", "FieldRule", "Problem", "Selection", "is_date_of_birth", "select_fields"]

Via = Literal["envelope", "exact", "tag", "parent", "default"]
KEEP, DROP = "keep", "drop"
# Operators that apply field by field below a record selector (`location: keep`).
_SPREADABLE = frozenset({"keep", "drop", "redact"})
_KEEP, _DROP = Treatment(operator=KEEP), Treatment(operator=DROP)
ENVELOPE_TIMES = frozenset({"envelope.occurred_at", "envelope.recorded_at"})
KNOWN_TAGS = frozenset(f"{attr}:{v}" for attr, values in TAG_VALUES.items() for v in values)


@dataclass(frozen=True)
class FieldRule:
    """The treatment one leaf gets and why: `selector` is the YAML key that decided it."""

    path: str
    operator: str  # "keep", "drop", "pseudonymise", ...
    params: OperatorParams | None
    via: Via
    selector: str | None  # None for the envelope and for fields the agreement does not mention
    output_type: Any  # Avro type of the released value (None: not released)

    @property
    def released(self) -> bool:
        return self.output_type is not None

    @property
    def transformed(self) -> bool:
        return self.released and self.operator != KEEP


@dataclass(frozen=True)
class Problem:
    """A problem in one agreement: `key` is the dotted YAML key, relative to `event_types.<type>`."""

    key: str
    message: str


@dataclass(frozen=True)
class Selection:
    rules: Mapping[str, FieldRule]  # leaf path -> rule, in schema order
    problems: tuple[Problem, ...]


def _normalise(selector: str) -> str:
    return selector[:-2] if selector.endswith("[]") else selector


def select_fields(
    tree: tuple[Node, ...], rule: EventTypeRule, event_type: str, *, time_unit: str = "month"
) -> Selection:
    """Resolve every leaf of `tree` under `rule` (see the module docstring for precedence).

    `time_unit` is what envelope times are truncated to when the agreement does not say; the
    default is the coarsest any events are shared at, so a caller that forgets the tier fails safe.
    """
    problems: list[Problem] = []
    time_rule = Treatment(operator="truncate_date", params={"unit": time_unit})
    envelope_time = (time_rule, parse_params("truncate_date", time_rule.params))
    nodes = {n.path: n for n in walk(tree)}
    by_path: dict[str, tuple[str, Treatment, OperatorParams | None]] = {}
    by_tag: list[tuple[str, str, Treatment, OperatorParams | None]] = []
    tags_present = {t for n in leaves(tree) if not n.path.startswith("envelope") for t in n.tags}
    for selector, treatment in rule.fields.items():
        key = f"fields.{selector}"
        params = _params(treatment, key, problems)
        if selector.startswith("tag:"):
            tag = selector[4:]
            if tag not in KNOWN_TAGS:
                problems.append(Problem(key, f"unknown tag {tag!r} (known: {', '.join(sorted(KNOWN_TAGS))})"))
            elif tag not in tags_present:
                problems.append(Problem(key, f"no field tagged {tag} in {event_type}"))
            else:
                by_tag.append((selector, tag, treatment, params))
            continue
        path = _normalise(selector)
        node = nodes.get(path)
        if node is None:
            problems.append(Problem(key, f"no such field in {event_type}"))
        elif path in ENVELOPE_TIMES and treatment.operator != "truncate_date":
            message = "envelope times are always released, generalised: use truncate_date"
            problems.append(Problem(key, message))
        elif path not in ENVELOPE_TIMES and (path == "envelope" or path.startswith("envelope.")):
            problems.append(Problem(key, "the envelope is always released unchanged: remove this rule"))
        elif not node.is_leaf and treatment.operator not in _SPREADABLE:
            problems.append(
                Problem(
                    key, f"{treatment.operator} applies to single fields; {path} is a record: name its fields"
                )
            )
        elif path in by_path:
            problems.append(Problem(key, f"same field as {by_path[path][0]}"))
        else:
            by_path[path] = (selector, treatment, params)

    rules: dict[str, FieldRule] = {}
    for leaf in leaves(tree):
        decided = _decide(leaf, by_path, by_tag, problems, envelope_time)
        if decided is None:
            continue
        via, chosen, treatment, params = decided
        out = _output_type(leaf, treatment, params, chosen or leaf.path, problems)
        rules[leaf.path] = FieldRule(leaf.path, treatment.operator, params, via, chosen, out)
    return Selection(rules, tuple(problems))


def is_date_of_birth(leaf: Node) -> bool:
    """A date, or a string the catalogue marks as a date of birth (the operators parse those)."""
    kind = avro_kind(leaf.avro_type)
    return kind == "date" or (kind == "string" and "identifier:date_of_birth" in leaf.tags)


def _params(treatment: Treatment, key: str, problems: list[Problem]) -> OperatorParams | None:
    try:
        return parse_params(treatment.operator, treatment.params)
    except ConfigurationError as exc:
        problems.append(Problem(key, str(exc)))
        return None


def _decide(
    leaf: Node,
    by_path: Mapping[str, tuple[str, Treatment, OperatorParams | None]],
    by_tag: list[tuple[str, str, Treatment, OperatorParams | None]],
    problems: list[Problem],
    envelope_time: tuple[Treatment, OperatorParams],
) -> tuple[Via, str | None, Treatment, OperatorParams | None] | None:
    """(via, selector, treatment, params) for one leaf; None when a conflict was reported."""
    if leaf.path in ENVELOPE_TIMES:
        exact = by_path.get(leaf.path)
        return ("exact", *exact) if exact is not None else ("envelope", None, *envelope_time)
    if leaf.path.startswith("envelope."):
        return "envelope", None, _KEEP, parse_params(KEEP, {})
    exact = by_path.get(leaf.path)
    if exact is not None:
        return "exact", *exact
    matches = [(sel, tr, p) for sel, tag, tr, p in by_tag if tag in leaf.tags]
    if matches:
        distinct = {str(tr) for _, tr, _ in matches}
        if len(distinct) > 1:
            names = ", ".join(sel for sel, _, _ in matches)
            problems.append(
                Problem(
                    f"fields.{matches[-1][0]}",
                    f"{leaf.path} matches conflicting rules {names}: add a rule for it",
                )
            )
            return None
        return "tag", *matches[0]
    segments = leaf.path.split(".")
    for i in range(len(segments) - 1, 0, -1):
        parent = by_path.get(_normalise(".".join(segments[:i])))
        if parent is not None:
            return "parent", *parent
    return "default", None, _DROP, parse_params(DROP, {})


def _output_type(
    leaf: Node,
    treatment: Treatment,
    params: OperatorParams | None,
    selector: str,
    problems: list[Problem],
) -> Any:
    if params is None:
        return None
    key = f"fields.{selector}"
    where = "" if selector == leaf.path else f"{leaf.path}: "
    if treatment.operator == "pseudonymise":
        if avro_kind(leaf.avro_type) != "string":
            problems.append(
                Problem(key, f"{where}pseudonymise needs a string field, not {avro_kind(leaf.avro_type)}")
            )
            return None
        kinds = {t.split(":", 1)[1] for t in leaf.tags if t.startswith("identifier:")}
        wanted = getattr(params, "identifier", None)
        if kinds and wanted not in kinds:
            problems.append(Problem(key, f"{where}field holds {', '.join(sorted(kinds))}, not {wanted}"))
            return None
    if treatment.operator == "age_band" and not is_date_of_birth(leaf):
        problems.append(Problem(key, f"{where}age_band needs a date field, not {avro_kind(leaf.avro_type)}"))
        return None
    try:
        return get_operator(treatment.operator).output_type(params, leaf.avro_type)
    except ConfigurationError as exc:
        problems.append(Problem(key, f"{where}{exc}"))
        return None
