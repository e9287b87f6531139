"""The Avro schema of what one recipient receives: the event schema cut down and retyped by a plan.

Dropped fields disappear (records left empty disappear too), transformed fields take the type
their operator declares, nullability is kept (`["null", T]`, default null) and docs and custom
attributes travel with the field, updated so a downstream reader can tell what was done: a
pseudonymised field is `"pii": "pseudonym"` with its domain, others carry `"transform"`.
Records are renamed by path under `sharingbus.shared.<recipient>.<event_type>` so two differently
cut copies of the same source record never clash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.agreements.model import Agreement
from streams.agreements.selection import FieldRule
from streams.agreements.tree import Node
from streams.avro.event_types import EventType

__all__ = ["agreement_schema", "output_schema", "record_name"]

_STRUCTURAL = frozenset({"name", "type", "default", "aliases", "order"})


def record_name(recipient: str, event_type: str) -> str:
    """Full name of the top-level output record, e.g. sharingbus.shared.vru_analysts.police.crime_recorded."""
    return f"sharingbus.shared.{recipient}.{event_type}"


def output_schema(
    tree: tuple[Node, ...],
    rules: Mapping[str, FieldRule],
    *,
    recipient: str,
    event_type: str,
    doc: str,
    domain: str,
    nullable_transforms: bool,
) -> dict[str, Any]:
    """The output record schema (named types defined once, later uses by name, as Avro requires).

    `nullable_transforms`: transformed fields may be withheld (set to null) when an identifier is
    invalid, so they must accept null even where the source field does not.
    """
    top = record_name(recipient, event_type)
    fields = _fields(tree, rules, top, domain, nullable_transforms)
    schema = {"type": "record", "name": top, "doc": doc, "fields": fields}
    return _define_once(schema, set())


def agreement_schema(
    agreement: Agreement, event_type: EventType, tree: tuple[Node, ...], rules: Mapping[str, FieldRule]
) -> dict[str, Any]:
    """The output schema of `agreement` for `event_type` (its tree and resolved rules given)."""
    return output_schema(
        tree,
        rules,
        recipient=agreement.recipient,
        event_type=event_type.name,
        doc=str(event_type.schema.get("doc", "")),
        domain=agreement.domain,
        nullable_transforms=agreement.on_invalid_identifier == "withhold_field",
    )


def _fields(
    nodes: tuple[Node, ...], rules: Mapping[str, FieldRule], top: str, domain: str, nullable_transforms: bool
) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        attrs = {k: v for k, v in node.field.items() if k not in _STRUCTURAL}
        if node.is_leaf:
            rule = rules.get(node.path)
            if rule is None or not rule.released:
                continue
            typ = node.avro_type if rule.operator == "keep" else rule.output_type
            nullable = node.nullable or (rule.transformed and nullable_transforms)
            out.append(
                _field(node, typ, nullable, _leaf_attrs(attrs, rule, domain), keep=rule.operator == "keep")
            )
            continue
        children = _fields(node.children, rules, top, domain, nullable_transforms)
        if not children:
            continue
        assert node.record is not None
        record = {
            "type": "record",
            "name": f"{top}.{node.path.replace('[]', '').replace('.', '_')}",
            "doc": node.record.get("doc", ""),
            "fields": children,
        }
        typ = {"type": "array", "items": record} if node.is_array else record
        # An array's default ([]) still fits; a record's default would name dropped fields.
        out.append(_field(node, typ, node.nullable, attrs, keep=node.is_array))
    return out


def _field(node: Node, typ: Any, nullable: bool, attrs: dict[str, Any], *, keep: bool) -> dict[str, Any]:
    field: dict[str, Any] = {"name": node.name}
    if typ == "null":
        field.update(type="null", default=None)
    elif nullable:
        branches = [b for b in typ if b != "null"] if isinstance(typ, list) else [typ]
        field.update(type=["null", *branches], default=None)
    else:
        field["type"] = typ
        if keep and "default" in node.field:
            field["default"] = node.field["default"]
    field.update(attrs)
    return field


def _leaf_attrs(attrs: dict[str, Any], rule: FieldRule, domain: str) -> dict[str, Any]:
    if rule.operator == "keep":
        return attrs
    attrs["transform"] = rule.operator
    if rule.operator == "pseudonymise":
        attrs["pii"] = "pseudonym"
        attrs["identifier"] = getattr(rule.params, "identifier", attrs.get("identifier"))
        attrs["pseudonym_domain"] = getattr(rule.params, "domain", None) or domain
    elif rule.operator == "redact":
        attrs.pop("pii", None)
        attrs.pop("identifier", None)
    else:  # generalised: still quasi-identifying, but no longer the identifier itself
        attrs.pop("identifier", None)
    return attrs


def _define_once(t: Any, defined: set[str]) -> Any:
    """Copy of `t` where a named type already defined earlier becomes a reference to its name."""
    if isinstance(t, list):
        return [_define_once(b, defined) for b in t]
    if not isinstance(t, dict):
        return t
    kind = t.get("type")
    if kind in ("record", "enum", "fixed"):
        name = str(t["name"])
        if name in defined:
            return name
        defined.add(name)
        if kind == "record":
            fields = [{**f, "type": _define_once(f["type"], defined)} for f in t["fields"]]
            return {**t, "fields": fields}
        return t
    if kind == "array":
        return {**t, "items": _define_once(t["items"], defined)}
    if kind == "map":
        return {**t, "values": _define_once(t["values"], defined)}
    return t
