"""One event type: its Avro schema file, expanded and checked, and its tagged fields by path.

`schemas/` holds one `<event_type>.avsc` per event type plus shared named types in files named by
their full names (`sharingbus.Subject.avsc`), so `fastavro.schema.load_schema` resolves them too.
Loading expands those named types inline (first use defines, later uses refer by name, as Avro
requires), keeps the custom attributes policy targets (`pii`, `special_category`, `identifier`),
checks the contract's event shape and refuses anything undocumented, so a bad schema fails at
start with its file named, never per event.

Field paths are dotted, arrays of records add `[]` (`streams.avro.paths`): `subject.nhs_number`,
`people[].subject.upn`. A tag on a record or array field applies to everything inside it, so
tagging `people` as criminal offence data marks every identifier in it too.

Every partner event type declares its `record_key` (a top-level attribute: the field paths that
identify one record in the partner's own system, e.g. `["crime_reference"]`). The publisher derives
the event id from it (`streams.publish.record_ids`), so a row published twice is one event. Key
paths must be single values outside arrays: checked here, with the file named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from streams.avro.formats import FORMATS
from streams.errors import ConfigurationError

__all__ = [
    "BUS_SECTOR",
    "PRIMITIVES",
    "SECTORS",
    "TAG_VALUES",
    "EventType",
    "FieldInfo",
    "fullname",
    "load_event_type",
    "strip_null",
]

SECTORS = ("police", "health", "education", "social_care", "probation", "youth_justice", "housing")
BUS_SECTOR = "bus"  # bus-level event types (data subject requests): any partner may publish them
NAMESPACE = "sharingbus.events"
TAG_VALUES: dict[str, frozenset[str]] = {
    "pii": frozenset({"direct", "quasi", "free_text"}),
    "special_category": frozenset({"health", "social_care", "criminal_offence"}),
    "identifier": frozenset({"nhs_number", "upn", "pnc_id", "local_id", "name", "date_of_birth", "postcode"}),
}
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_EVENT_TYPE = re.compile(r"^(?P<sector>[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*$")
_HEAD = (
    ("envelope", "sharingbus.Envelope", False),
    ("subject", "sharingbus.Subject", True),
    ("location", "sharingbus.Location", True),
)


@dataclass(frozen=True)
class FieldInfo:
    """One field of an event type, found by walking the schema."""

    path: str
    avro_type: Any
    nullable: bool
    tags: frozenset[str]
    doc: str
    format: str | None = None  # a validated string format (streams.avro.formats), e.g. "lsoa_code"


@dataclass(frozen=True, eq=False)
class EventType:
    """An event type: its schema as registered, parsed for fastavro, and its fields by path."""

    name: str
    sector: str
    schema: dict[str, Any]
    parsed: Any
    fields: Mapping[str, FieldInfo]
    version: int = 1
    record_key: tuple[str, ...] = ()

    @property
    def formatted(self) -> dict[str, str]:
        """Paths of fields with a validated format -> the format's name."""
        return {p: f.format for p, f in self.fields.items() if f.format is not None}

    def paths_with_tag(self, tag: str) -> list[str]:
        """Paths carrying `tag` (e.g. "pii:direct"), in schema order."""
        return [p for p, f in self.fields.items() if tag in f.tags]

    @property
    def has_subject(self) -> bool:
        return "subject" in self.fields


def strip_null(avro_type: Any) -> tuple[Any, bool]:
    """(T, True) for a ["null", T] union, (avro_type, False) otherwise."""
    if isinstance(avro_type, list) and "null" in avro_type and len(avro_type) == 2:
        return next(t for t in avro_type if t != "null"), True
    return avro_type, False


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{file}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{file}: invalid JSON at line {exc.lineno}: {exc.msg}") from None


def load_event_type(schemas_dir: Path, file: Path) -> EventType:
    name = file.stem
    m = _EVENT_TYPE.match(name)
    if m is None or m.group("sector") not in (*SECTORS, BUS_SECTOR):
        raise ConfigurationError(
            f"{file}: file name must be <sector>.<name>.avsc with sector in {(*SECTORS, BUS_SECTOR)}"
        )
    raw = _read_json(file)
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise ConfigurationError(f"{file}: top level must be an Avro record")
    if fullname(raw, "") != f"{NAMESPACE}.{raw['name'].rsplit('.', 1)[-1]}":
        raise ConfigurationError(f"{file}: record must be in namespace {NAMESPACE}")
    version = raw.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ConfigurationError(f"{file}: schema_version must be a positive integer")
    expander = _Expander(schemas_dir, file)
    schema = expander.expand(raw, "")
    _check_head(file, schema)
    try:
        parsed = fastavro.parse_schema(schema)
    except Exception as exc:  # fastavro raises SchemaParseError, UnknownType, ValueError...
        raise ConfigurationError(f"{file}: not a valid Avro schema: {exc}") from None
    fields = dict(_walk(schema, "", frozenset(), expander.named, NAMESPACE))
    record_key = _record_key(file, raw, fields, m.group("sector"))
    return EventType(name, m.group("sector"), schema, parsed, fields, version, record_key)


def _record_key(
    file: Path, raw: Mapping[str, Any], fields: Mapping[str, FieldInfo], sector: str
) -> tuple[str, ...]:
    """The declared `record_key`: required for partner event types, single values only.

    Bus event types (data subject requests) have none: every request is a new event.
    """
    declared = raw.get("record_key")
    if declared is None:
        if sector == BUS_SECTOR:
            return ()
        raise ConfigurationError(
            f"{file}: record_key: missing (the field paths that identify a partner's record, "
            'e.g. ["crime_reference"]; the event id is derived from them)'
        )
    if not isinstance(declared, list) or not declared or not all(isinstance(p, str) for p in declared):
        raise ConfigurationError(f"{file}: record_key: must be a non-empty list of field paths")
    if len(set(declared)) != len(declared):
        raise ConfigurationError(f"{file}: record_key: lists a field twice")
    for path in declared:
        info = fields.get(path)
        if info is None:
            raise ConfigurationError(f"{file}: record_key: {path!r} is not a field of this event type")
        if path.startswith("envelope.") and path != "envelope.occurred_at":
            raise ConfigurationError(
                f"{file}: record_key: {path!r}: of the envelope only occurred_at identifies a record"
            )
        t = info.avro_type
        kind = t if isinstance(t, str) else t.get("type") if isinstance(t, dict) else "union"
        if "[]" in path or kind in ("record", "array", "map", "union"):
            raise ConfigurationError(f"{file}: record_key: {path!r} must be a single value outside arrays")
    return tuple(declared)


def _check_head(file: Path, schema: dict[str, Any]) -> None:
    """Envelope, subject (optional: anonymous event types have none), location, in that order."""
    names = [f["name"] for f in schema["fields"]]
    expected = [n for n, _, _ in _HEAD if n != "subject" or "subject" in names]
    if names[: len(expected)] != expected:
        raise ConfigurationError(f"{file}: fields must start with {', '.join(expected)}")
    for f in schema["fields"][: len(expected)]:
        _, type_name, optional = next(h for h in _HEAD if h[0] == f["name"])
        inner, nullable = strip_null(f["type"])
        inner_name = inner if isinstance(inner, str) else fullname(inner, "")
        if inner_name != type_name or nullable != optional or (optional and f.get("default", 0) is not None):
            want = f'["null", {type_name}] with default null' if optional else type_name
            raise ConfigurationError(f"{file}: field {f['name']} must be {want}")


class _Expander:
    """Inlines named types from `<fullname>.avsc` files and checks docs, enums and tags on the way."""

    def __init__(self, schemas_dir: Path, file: Path) -> None:
        self.dir = schemas_dir
        self.file = file
        self.named: dict[str, dict[str, Any]] = {}

    def fail(self, where: str, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}")

    def expand(self, t: Any, ns: str, where: str = "") -> Any:
        if isinstance(t, str):
            return self._reference(t, ns, where)
        if isinstance(t, list):
            return [self.expand(b, ns, where) for b in t]
        if not isinstance(t, dict) or "type" not in t:
            raise self.fail(where, f"invalid type {t!r}")
        kind = t["type"]
        if kind == "array":
            return {**t, "items": self.expand(t["items"], ns, where + "[]")}
        if kind == "map":
            return {**t, "values": self.expand(t["values"], ns, where + "{}")}
        if kind not in ("record", "enum", "fixed"):
            return t  # primitive, possibly with a logical type
        full = fullname(t, ns)
        if full in self.named:
            raise self.fail(where, f"type {full} defined twice")
        if not t.get("doc"):
            raise self.fail(where or full, f"{kind} {full} has no doc")
        out = dict(t)
        self.named[full] = out
        if kind == "enum":
            if t.get("default") not in t.get("symbols", []):
                raise self.fail(where or full, f"enum {full} needs a default symbol (so it can grow)")
        elif kind == "record":
            inner_ns = full.rsplit(".", 1)[0] if "." in full else ""
            out["fields"] = [self._field(f, inner_ns, where) for f in t.get("fields", [])]
        return out

    def _field(self, f: dict[str, Any], ns: str, where: str) -> dict[str, Any]:
        path = f"{where}.{f.get('name')}" if where else str(f.get("name"))
        if not f.get("doc"):
            raise self.fail(path, "field has no doc")
        for attr, allowed in TAG_VALUES.items():
            if attr in f and f[attr] not in allowed:
                raise self.fail(path, f"{attr} must be one of {sorted(allowed)}, not {f[attr]!r}")
        if "format" in f and f["format"] not in FORMATS:
            raise self.fail(path, f"format must be one of {sorted(FORMATS)}, not {f['format']!r}")
        return {**f, "type": self.expand(f["type"], ns, path)}

    def _reference(self, name: str, ns: str, where: str) -> Any:
        if name in PRIMITIVES:
            return name
        full = name if "." in name else f"{ns}.{name}"
        if full in self.named:
            return name
        shared = self.dir / f"{full}.avsc"
        if not shared.exists():
            raise self.fail(where, f"unknown type {name!r} (no {shared.name})")
        definition = _read_json(shared)
        return self.expand(definition, full.rsplit(".", 1)[0], where)


def fullname(t: Mapping[str, Any], ns: str) -> str:
    """The full name of named type `t` written in namespace `ns` (Avro's rules: a dotted name is full)."""
    name = str(t["name"])
    if "." in name:
        return name
    namespace = t.get("namespace", ns)
    return f"{namespace}.{name}" if namespace else name


def _resolve(t: Any, named: Mapping[str, dict[str, Any]], ns: str) -> Any:
    if isinstance(t, str) and t not in PRIMITIVES:
        return named.get(t if "." in t else f"{ns}.{t}", named.get(t, t))
    return t


def _walk(
    record: Mapping[str, Any],
    prefix: str,
    inherited: frozenset[str],
    named: Mapping[str, dict[str, Any]],
    ns: str,
) -> Iterator[tuple[str, FieldInfo]]:
    record_ns = fullname(record, ns).rsplit(".", 1)[0]
    for f in record["fields"]:
        path = f"{prefix}.{f['name']}" if prefix else f["name"]
        inner, nullable = strip_null(f["type"])
        resolved = _resolve(inner, named, record_ns)
        tags = inherited | {f"{a}:{f[a]}" for a in TAG_VALUES if a in f}
        yield path, FieldInfo(path, resolved, nullable, frozenset(tags), f["doc"], f.get("format"))
        if isinstance(resolved, dict) and resolved.get("type") == "record":
            yield from _walk(resolved, path, frozenset(tags), named, record_ns)
        elif isinstance(resolved, dict) and resolved.get("type") == "array":
            items = _resolve(strip_null(resolved["items"])[0], named, record_ns)
            if isinstance(items, dict) and items.get("type") == "record":
                yield from _walk(items, f"{path}[]", frozenset(tags), named, record_ns)
