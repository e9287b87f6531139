"""What would a recipient receive for this event, and why? Runs the real plans, publishes nothing.

For each plan that covers (event type, partner, recipient) the explanation gives the agreement, its
purpose and lawful basis, the outcome and output of `Plan.apply`, and for every field the rule that
decided it (kept, dropped and by which rule or tag, pseudonymised in which domain, generalised how).
No plan means default deny, which is an explanation too.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import fastavro.validation

from streams.agreements.compiler import Plan, PlanSet
from streams.agreements.model import LAWFUL_BASES
from streams.agreements.selection import FieldRule
from streams.agreements.tree import Node, event_tree
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError, ValidationError
from streams.privacy.operators.base import avro_kind

__all__ = [
    "Explanation",
    "FieldExplanation",
    "PlanExplanation",
    "coerce_event",
    "describe_rule",
    "explain",
    "jsonable",
]

FieldOutcome = Literal["released", "transformed", "withheld"]


@dataclass(frozen=True)
class FieldExplanation:
    path: str
    outcome: FieldOutcome
    rule: str  # e.g. "dropped by tag pii:free_text", "pseudonymised as nhs_number in domain recipient:x"


@dataclass(frozen=True)
class PlanExplanation:
    agreement_id: str
    agreement_version: str
    plan_version: str
    output_topic: str
    purpose: str
    lawful_basis: list[dict[str, str]]  # [{"code", "label"}], special-category conditions included
    conditions: list[str]
    outcome: str
    reason: str
    output: dict[str, Any] | None
    fields: list[FieldExplanation]
    invalid_identifiers: list[str]


@dataclass(frozen=True)
class Explanation:
    recipient: str
    event_type: str
    partner: str
    outcome: str  # "shared" if any plan shares, else the first plan's outcome, else "denied"
    reason: str
    plans: list[PlanExplanation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (dates and times as ISO strings)."""
        return jsonable(asdict(self))


def explain(
    planset: PlanSet, recipient: str, event: Mapping[str, Any], partner: str | None = None
) -> Explanation:
    """Explain what `recipient` gets of `event` (decoded, as fastavro gives it) from `partner`."""
    if recipient not in planset.recipients:
        raise ConfigurationError(
            f"unknown recipient {recipient!r} (known: {', '.join(sorted(planset.recipients))})"
        )
    envelope = event.get("envelope") or {}
    event_type = str(envelope.get("event_type", ""))
    if partner is None:
        partner = str(envelope.get("source_partner", ""))
    else:  # explain as if `partner` had published it (the enforcer checks the envelope matches)
        event = {**event, "envelope": {**envelope, "source_partner": partner}}
    plans = [p for p in planset.plans_for(event_type, partner) if p.recipient == recipient]
    if not plans:
        reason = f"no agreement shares {event_type} from {partner} with {recipient} (default deny)"
        return Explanation(recipient, event_type, partner, "denied", reason)
    explained = [_explain_plan(p, event) for p in plans]
    shared = [e for e in explained if e.outcome == "shared"]
    first = shared[0] if shared else explained[0]
    return Explanation(recipient, event_type, partner, first.outcome, first.reason, explained)


def _explain_plan(plan: Plan, event: Mapping[str, Any]) -> PlanExplanation:
    decision = plan.apply(event)
    invalid = set(decision.withheld) - {p for p, r in plan.fields.items() if not r.released}
    fields = []
    for path, rule in plan.fields.items():
        if path in invalid:
            fields.append(
                FieldExplanation(
                    path, "withheld", f"withheld: invalid identifier ({describe_rule(rule, plan.domain)})"
                )
            )
        else:
            outcome: FieldOutcome = (
                "transformed" if rule.transformed else "released" if rule.released else "withheld"
            )
            fields.append(FieldExplanation(path, outcome, describe_rule(rule, plan.domain)))
    bases = [*plan.lawful_basis, *plan.special_category_basis]
    return PlanExplanation(
        agreement_id=plan.agreement_id,
        agreement_version=plan.agreement_version,
        plan_version=plan.plan_version,
        output_topic=plan.output_topic,
        purpose=plan.purpose,
        lawful_basis=[{"code": c, "label": LAWFUL_BASES.get(c, c)} for c in bases],
        conditions=[c.describe() for c in plan.conditions],
        outcome=decision.outcome,
        reason=decision.reason,
        output=decision.output,
        fields=fields,
        invalid_identifiers=list(decision.invalid_identifiers),
    )


def describe_rule(rule: FieldRule, domain: str) -> str:
    """One line saying what happens to a field and which rule decided it."""
    if rule.via == "envelope" and rule.operator == "keep":
        return "kept: the envelope is always released"
    if rule.via == "envelope":
        unit = getattr(rule.params, "unit", "")
        return f"generalised to the {unit}: envelope times follow the recipient's tier"
    if rule.via == "default":
        return "dropped: not in agreement"
    source = {
        "exact": f"rule {rule.selector}",
        "tag": f"tag {str(rule.selector)[4:]}",
        "parent": f"parent {rule.selector}",
    }
    by = source.get(rule.via, str(rule.selector))
    p, op = rule.params, rule.operator
    token_domain = getattr(p, "domain", None) or domain
    what = {
        "keep": "kept",
        "drop": "dropped",
        "redact": "redacted",
        "pseudonymise": f"pseudonymised as {getattr(p, 'identifier', '?')} in domain {token_domain}",
        "age_band": f"generalised to age band {_bands(getattr(p, 'bands', ()))}",
        "truncate_date": f"generalised to {getattr(p, 'unit', '?')}",
        "postcode_district": f"generalised to postcode {getattr(p, 'level', 'district')}",
        "area_lookup": f"generalised to LSOA (from {getattr(p, 'source', '?')})",
        "round": f"rounded ({_params_text(p)})",
        "band": f"banded ({_params_text(p)})",
    }.get(op, f"{op} ({_params_text(p)})")
    if not rule.released and op != "drop":
        what = f"dropped ({op} releases nothing)"
    return f"{what} by {by}"


def _bands(bounds: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(b) for b in bounds) + ")"


def _params_text(params: Any) -> str:
    if params is None:
        return ""
    return ", ".join(f"{k}={v}" for k, v in params.model_dump(exclude_none=True).items())


# --- EVENT.json -> the Python values fastavro would decode ----------------------------------------


def coerce_event(catalogue: Catalogue, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A decoded event from JSON: ISO dates and times become date/datetime, defaults fill gaps.

    ValidationError (naming the field) when the result does not fit the event type's schema.
    """
    envelope = raw.get("envelope")
    if not isinstance(envelope, Mapping) or not isinstance(envelope.get("event_type"), str):
        raise ValidationError("envelope.event_type", "missing: the event must carry its envelope")
    event_type = catalogue.event_type(envelope["event_type"])
    event = _record(event_tree(event_type), raw)
    try:
        fastavro.validation.validate(event, event_type.parsed, raise_errors=True)
    except fastavro.validation.ValidationError as exc:
        problems = "; ".join(_schema_problem(e) for e in _messages(exc))
        raise ValidationError(event_type.name, f"does not match its schema: {problems}") from None
    return event


def _messages(exc: Exception) -> list[str]:
    """fastavro puts its messages in args[0], as a list or as that list dumped to JSON."""
    first = exc.args[0] if exc.args else str(exc)
    if isinstance(first, str):
        try:
            first = json.loads(first)
        except ValueError:
            return [first]
    return [str(m) for m in first] if isinstance(first, list) else [str(first)]


_FIELD_PROBLEM = re.compile(r"Field\((?P<field>[^)]*)\) is (?P<value>.*?) expected (?P<expected>.*)", re.S)


def _schema_problem(text: str) -> str:
    """One of fastavro's validation messages as a short phrase (it prints whole schema fragments)."""
    match = _FIELD_PROBLEM.match(text.strip())
    if match is None:
        return " ".join(text.split())[:120]
    value = "missing" if match["value"] == "None" else f"{match['value'][:40]!s}"
    expected = match["expected"]
    kind = re.search(r"'logicalType': '([^']+)'", expected) or re.search(r"'type': '([^']+)'", expected)
    return f"{match['field']} is {value}, expected {kind.group(1) if kind else expected[:60]}"


def _record(nodes: tuple[Node, ...], raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in nodes:
        value = raw.get(node.name, node.field.get("default")) if isinstance(raw, Mapping) else None
        if value is None:
            out[node.name] = None
        elif node.is_leaf:
            out[node.name] = _leaf(node, value)
        elif node.is_array:
            out[node.name] = [_record(node.children, item) for item in value]
        else:
            out[node.name] = _record(node.children, value)
    return out


def _leaf(node: Node, value: Any) -> Any:
    kind = avro_kind(node.avro_type)
    if not isinstance(value, str):
        return value
    try:
        if kind in ("timestamp-millis", "timestamp-micros"):
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        if kind == "date":
            return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(node.path, f"not an ISO {kind}") from None
    return value


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
