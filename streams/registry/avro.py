"""Parsing and identity of Avro schemas as the registry receives them.

The registry keeps the schema text exactly as registered (custom attributes such as `"pii"` and
`"doc"` included) and derives from it a canonical key, so that the same schema written with other
whitespace or key order gets the same id, while a changed attribute gets a new one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

AVRO = "AVRO"
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InvalidSchema(ValueError):
    """The schema text is not a valid Avro schema; the message names the problem."""


@dataclass(frozen=True)
class Reference:
    """A named type imported from another subject's version (Confluent schema references)."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}

    @classmethod
    def from_json(cls, raw: Any) -> Reference:
        if not isinstance(raw, Mapping):
            raise InvalidSchema(f"a reference must be an object with name, subject and version: {raw!r}")
        name, subject, version = raw.get("name"), raw.get("subject"), raw.get("version")
        if not isinstance(name, str) or not isinstance(subject, str) or not isinstance(version, int):
            raise InvalidSchema(f"a reference needs a string name and subject and an int version: {raw!r}")
        return cls(name, subject, version)


@dataclass(frozen=True)
class AvroSchema:
    """A parsed schema: the text as registered, its identity key and fastavro's parsed form."""

    text: str
    canonical: str
    parsed: Any
    named: Mapping[str, Any]
    references: tuple[Reference, ...] = ()


def canonical_key(text: str, references: Sequence[Reference] = ()) -> str:
    """Identity of a schema: its JSON re-serialised with sorted keys, plus its references."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidSchema(f"schema is not valid JSON: {exc}") from exc
    key = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if references:
        key += "|" + json.dumps([r.to_json() for r in references], sort_keys=True, separators=(",", ":"))
    return key


def parse_avro(
    text: str,
    references: Sequence[Reference] = (),
    referenced: Sequence[AvroSchema] = (),
) -> AvroSchema:
    """Validate `text` as Avro (with the named types of `referenced` in scope) or raise InvalidSchema."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchema("the schema is empty")
    canonical = canonical_key(text, references)
    doc = json.loads(text)
    _check_structure(doc, "schema")
    named: dict[str, Any] = {}
    for ref in referenced:
        named.update(ref.named)
    try:
        parsed = fastavro.parse_schema(doc, named_schemas=named)
    except UnknownType as exc:
        raise InvalidSchema(
            f"unknown type {exc.name!r} (not a primitive, nor a named type defined before)"
        ) from exc
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidSchema(f"{type(exc).__name__}: {exc}") from exc
    return AvroSchema(text, canonical, parsed, dict(named), tuple(references))


def _check_structure(node: Any, where: str) -> None:
    """Rules fastavro does not enforce (Avro's Java parser does): field lists, unique names, sizes."""
    if isinstance(node, str):
        return
    if isinstance(node, list):
        for i, branch in enumerate(node):
            _check_structure(branch, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        raise InvalidSchema(f"{where}: a schema must be a JSON string, object or array, not {node!r}")
    kind = node.get("type")
    if kind is None:
        raise InvalidSchema(f'{where}: object has no "type"')
    if isinstance(kind, (dict, list)):
        _check_structure(kind, where)
        return
    if kind in _NAMED:
        name = node.get("name")
        if not isinstance(name, str) or not all(_NAME.match(p) for p in name.split(".")):
            raise InvalidSchema(f"{where}: {kind} has an invalid or missing name: {name!r}")
        where = name
    if kind in ("record", "error"):
        fields = node.get("fields")
        if not isinstance(fields, list):
            raise InvalidSchema(f"record '{where}' has no \"fields\" array")
        seen: set[str] = set()
        for field in fields:
            if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                raise InvalidSchema(f"record '{where}': every field needs a string \"name\": {field!r}")
            fname = field["name"]
            if not _NAME.match(fname):
                raise InvalidSchema(f"record '{where}': invalid field name {fname!r}")
            if fname in seen:
                raise InvalidSchema(f"record '{where}': duplicate field name {fname!r}")
            seen.add(fname)
            if "type" not in field:
                raise InvalidSchema(f"field '{where}.{fname}' has no \"type\"")
            _check_structure(field["type"], f"{where}.{fname}")
    elif kind == "fixed":
        size = node.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidSchema(f"fixed '{where}' needs a non-negative integer \"size\", got {size!r}")
    elif kind == "array":
        if "items" not in node:
            raise InvalidSchema(f'{where}: array has no "items"')
        _check_structure(node["items"], f"{where}[]")
    elif kind == "map":
        if "values" not in node:
            raise InvalidSchema(f'{where}: map has no "values"')
        _check_structure(node["values"], f"{where}{{}}")
