"""An event type's fields as a tree, with named types resolved and qualified.

Selectors, the plan compiler and output-schema derivation all walk the same tree, so they agree on
what a path is: dotted, arrays of records add `[]` (`people[].subject.upn`), exactly the catalogue's
`FieldInfo.path`. Named types (first use defines, later uses refer by name) are resolved here and
enums/fixed types get fully qualified names, so a type copied into another namespace keeps its name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from streams.avro.event_types import PRIMITIVES, TAG_VALUES, EventType, fullname, strip_null

__all__ = ["Node", "event_tree", "leaves", "walk"]


@dataclass(frozen=True)
class Node:
    """One field: a leaf, a record, or an array of records (`children` then holds the item fields)."""

    name: str
    path: str
    field: Mapping[str, Any]  # the Avro field as written (doc, default, custom attributes)
    avro_type: Any  # ["null", T] reduced to T; references resolved; record/array bodies as in schema
    nullable: bool
    tags: frozenset[str]  # own and inherited, as the catalogue computes them
    children: tuple[Node, ...] = ()
    is_array: bool = False
    record: Mapping[str, Any] | None = None  # the record (or array item record) definition

    @property
    def is_leaf(self) -> bool:
        return self.record is None


def _namespace(fullname: str) -> str:
    return fullname.rsplit(".", 1)[0] if "." in fullname else ""


class _Resolver:
    """Resolves references and qualifies named types, remembering definitions in schema order."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def resolve(self, t: Any, ns: str) -> Any:
        """`t` with references replaced by (qualified) definitions, recursively except records."""
        if isinstance(t, str):
            if t in PRIMITIVES:
                return t
            full = t if "." in t else f"{ns}.{t}" if ns else t
            return self.named.get(full, self.named.get(t, t))
        if isinstance(t, list):
            return [self.resolve(b, ns) for b in t]
        if not isinstance(t, dict):
            return t
        kind = t.get("type")
        if kind == "array":
            return {**t, "items": self.resolve(t["items"], ns)}
        if kind == "map":
            return {**t, "values": self.resolve(t["values"], ns)}
        if kind in ("enum", "fixed"):
            full = fullname(t, ns)
            out = {k: v for k, v in t.items() if k != "namespace"}
            out["name"] = full
            self.named.setdefault(full, out)
            return out
        if kind == "record":
            full = fullname(t, ns)
            self.named.setdefault(full, t)
            return t
        return t


def event_tree(event_type: EventType) -> tuple[Node, ...]:
    """The top-level fields of `event_type` as nodes (the envelope first)."""
    schema = event_type.schema
    resolver = _Resolver()
    full = fullname(schema, "")
    resolver.named[full] = schema
    return _record_nodes(schema, _namespace(full), "", frozenset(), event_type, resolver)


def _tags_of(field: Mapping[str, Any], inherited: frozenset[str]) -> frozenset[str]:
    return inherited | {f"{attr}:{field[attr]}" for attr in TAG_VALUES if attr in field}


def _record_nodes(
    record: Mapping[str, Any],
    ns: str,
    prefix: str,
    inherited: frozenset[str],
    event_type: EventType,
    resolver: _Resolver,
) -> tuple[Node, ...]:
    nodes = []
    for f in record["fields"]:
        path = f"{prefix}.{f['name']}" if prefix else str(f["name"])
        inner, nullable = strip_null(f["type"])
        resolved = resolver.resolve(inner, ns)
        info = event_type.fields.get(path)
        tags = info.tags if info is not None else _tags_of(f, inherited)
        body, is_array = resolved, False
        if isinstance(resolved, dict) and resolved.get("type") == "array":
            items = resolver.resolve(strip_null(resolved["items"])[0], ns)
            if isinstance(items, dict) and items.get("type") == "record":
                body, is_array = items, True
        if isinstance(body, dict) and body.get("type") == "record":
            record_full = fullname(body, ns)
            child_prefix = f"{path}[]" if is_array else path
            children = _record_nodes(body, _namespace(record_full), child_prefix, tags, event_type, resolver)
            nodes.append(Node(str(f["name"]), path, f, resolved, nullable, tags, children, is_array, body))
        else:
            nodes.append(Node(str(f["name"]), path, f, resolved, nullable, tags))
    return tuple(nodes)


def walk(nodes: tuple[Node, ...]) -> Iterator[Node]:
    """Every node, depth first, in schema order."""
    for n in nodes:
        yield n
        yield from walk(n.children)


def leaves(nodes: tuple[Node, ...]) -> Iterator[Node]:
    """Every leaf, in schema order."""
    return (n for n in walk(nodes) if n.is_leaf)
