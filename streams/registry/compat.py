"""Schema compatibility decided by Avro's reader/writer schema-resolution rules.

A registry that only compared field lists would let through changes that break consumers at run
time (a removed enum symbol, a narrowed type, a new field without a default inside a nested
record). `check_resolution(reader, writer)` applies the resolution rules of the Avro
specification and reports every rule broken, naming the field path; `check_compatibility` maps
Confluent's compatibility levels onto it (BACKWARD: the new schema reads the old data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streams.registry.avro import PRIMITIVES, AvroSchema


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def parse(cls, value: Any) -> CompatibilityLevel | None:
        """The level named by `value` (any case), or None when it names none."""
        if not isinstance(value, str):
            return None
        try:
            return cls(value.strip().upper())
        except ValueError:
            return None

    @property
    def backward(self) -> bool:
        return self.name.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.name.startswith(("FORWARD", "FULL"))

    @property
    def transitive(self) -> bool:
        return self.name.endswith("_TRANSITIVE")


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD

# (reader, writer) pairs the Avro specification allows beyond identical primitives.
PROMOTIONS = frozenset(
    {
        ("long", "int"),
        ("float", "int"),
        ("double", "int"),
        ("float", "long"),
        ("double", "long"),
        ("double", "float"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


@dataclass(frozen=True)
class Incompatibility:
    """One broken resolution rule: `rule` is a stable tag, `path` the dotted field path."""

    rule: str
    path: str
    message: str

    def __str__(self) -> str:
        return self.message


def check_resolution(reader: AvroSchema, writer: AvroSchema) -> list[Incompatibility]:
    """Every reason data written with `writer` cannot be read with `reader` (empty: it can)."""
    return _Resolver(reader.named, writer.named).check(reader.parsed, writer.parsed, "")


def check_compatibility(
    level: CompatibilityLevel, new: AvroSchema, previous: Sequence[tuple[int, AvroSchema]]
) -> list[str]:
    """Messages explaining why `new` breaks `level` against `previous` (version, schema), oldest first.

    Non-transitive levels compare with the latest previous schema only, transitive ones with all.
    """
    if level is CompatibilityLevel.NONE or not previous:
        return []
    against = previous if level.transitive else previous[-1:]
    messages: list[str] = []
    for version, old in against:
        if level.backward:
            messages += [
                f"{issue} ({level.value}: the new schema reading data written with version {version})"
                for issue in check_resolution(new, old)
            ]
        if level.forward:
            messages += [
                f"{issue} ({level.value}: version {version} reading data written with the new schema)"
                for issue in check_resolution(old, new)
            ]
    return messages


def _where(path: str) -> str:
    return f"field '{path}'" if path else "the top-level schema"


@dataclass
class _Resolver:
    """One reader/writer comparison; `_active` stops recursion through recursive named types."""

    reader_names: Mapping[str, Any]
    writer_names: Mapping[str, Any]
    _active: set[tuple[str, str]] = field(default_factory=set)

    def check(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        r = _resolve(reader, self.reader_names)
        w = _resolve(writer, self.writer_names)
        if isinstance(w, list):
            # Every branch the writer may have written must be readable.
            return [issue for branch in w for issue in self.check(r, branch, path)]
        if isinstance(r, list):
            return self._reader_union(r, w, path)
        if isinstance(r, str) and isinstance(w, str) and (r == w or (r, w) in PROMOTIONS):
            return []
        if isinstance(r, str) or isinstance(w, str):
            return [self._type_mismatch(r, w, path)]
        kind, wkind = _kind(r), _kind(w)
        if kind != wkind:
            return [self._type_mismatch(r, w, path)]
        if kind == "array":
            return self.check(r["items"], w["items"], f"{path}[]")
        if kind == "map":
            return self.check(r["values"], w["values"], f"{path}{{}}")
        if not _names_match(r, w):
            return [
                Incompatibility(
                    "NAME_MISMATCH",
                    path,
                    f"{_where(path)}: reader {kind} '{r['name']}' does not match writer {kind} "
                    f"'{w['name']}' (the names differ and no reader alias names the writer's type)",
                )
            ]
        if kind == "enum":
            return self._enum(r, w, path)
        if kind == "fixed":
            if r.get("size") != w.get("size"):
                return [
                    Incompatibility(
                        "FIXED_SIZE_MISMATCH",
                        path,
                        f"{_where(path)}: reader fixed '{r['name']}' has size {r.get('size')} "
                        f"but the writer's has size {w.get('size')}",
                    )
                ]
            return []
        return self._record(r, w, path)

    def _reader_union(self, union: list[Any], w: Any, path: str) -> list[Incompatibility]:
        """Avro reads a non-union writer value with the first reader branch that can read it."""
        candidates = []
        for branch in union:
            issues = self.check(branch, w, path)
            if not issues:
                return []
            if _same_shape(_resolve(branch, self.reader_names), w):
                candidates.append(issues)
        if candidates:
            # The branch Avro would pick (same record/enum name or same kind) explains best why not.
            return candidates[0]
        branches = ", ".join(_describe(_resolve(b, self.reader_names)) for b in union)
        return [
            Incompatibility(
                "MISSING_UNION_BRANCH",
                path,
                f"{_where(path)}: no branch of the reader union [{branches}] can read "
                f"the writer type {_describe(w)}",
            )
        ]

    def _type_mismatch(self, r: Any, w: Any, path: str) -> Incompatibility:
        return Incompatibility(
            "TYPE_MISMATCH",
            path,
            f"{_where(path)}: reader type {_describe(r)} cannot read writer type {_describe(w)}",
        )

    def _enum(self, r: Mapping[str, Any], w: Mapping[str, Any], path: str) -> list[Incompatibility]:
        missing = [s for s in w.get("symbols", []) if s not in set(r.get("symbols", []))]
        if missing and "default" not in r:
            return [
                Incompatibility(
                    "MISSING_ENUM_SYMBOLS",
                    path,
                    f"{_where(path)}: writer enum symbols {missing} are missing from reader enum "
                    f"'{r['name']}', which has no default symbol",
                )
            ]
        return []

    def _record(self, r: Mapping[str, Any], w: Mapping[str, Any], path: str) -> list[Incompatibility]:
        pair = (r["name"], w["name"])
        if pair in self._active:
            return []  # already being compared further up: a recursive type
        self._active.add(pair)
        try:
            writer_fields = {f["name"]: f for f in w.get("fields", [])}
            issues: list[Incompatibility] = []
            for rf in r.get("fields", []):
                fpath = f"{path}.{rf['name']}" if path else rf["name"]
                wf = _writer_field(rf, writer_fields)
                if wf is not None:
                    issues += self.check(rf["type"], wf["type"], fpath)
                elif "default" not in rf:
                    issues.append(
                        Incompatibility(
                            "READER_FIELD_MISSING_DEFAULT_VALUE",
                            fpath,
                            f"reader field '{fpath}' has no default and is missing from the writer schema",
                        )
                    )
            return issues
        finally:
            self._active.discard(pair)


def _resolve(node: Any, names: Mapping[str, Any]) -> Any:
    """A schema node with named references looked up and primitive wrappers unwrapped."""
    while True:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            if node not in names:
                raise KeyError(f"unknown named type {node!r}")
            node = names[node]
            continue
        if isinstance(node, dict):
            inner = node.get("type")
            if isinstance(inner, (dict, list)) or (isinstance(inner, str) and inner in PRIMITIVES):
                node = inner
                continue
        return node


def _kind(node: Mapping[str, Any]) -> str:
    kind = str(node.get("type"))
    return "record" if kind == "error" else kind


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _namespace(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _aliases(node: Mapping[str, Any]) -> set[str]:
    """Aliases as full names (an unqualified alias lives in the type's own namespace)."""
    ns = _namespace(str(node.get("name", "")))
    out = set()
    for alias in node.get("aliases") or []:
        out.add(alias if "." in alias or not ns else f"{ns}.{alias}")
    return out


def _names_match(r: Mapping[str, Any], w: Mapping[str, Any]) -> bool:
    """Named types match on their unqualified names, or a reader alias naming the writer's full name."""
    rname, wname = str(r["name"]), str(w["name"])
    return _short(rname) == _short(wname) or wname in _aliases(r)


def _writer_field(rf: Mapping[str, Any], writer_fields: Mapping[str, Any]) -> Any:
    if rf["name"] in writer_fields:
        return writer_fields[rf["name"]]
    for alias in rf.get("aliases") or []:
        if alias in writer_fields:
            return writer_fields[alias]
    return None


def _same_shape(r: Any, w: Any) -> bool:
    """Whether Avro would consider branch `r` for writer type `w` (same kind, same name if named)."""
    if isinstance(r, str) or isinstance(w, str) or isinstance(r, list) or isinstance(w, list):
        return isinstance(r, str) and isinstance(w, str) and (r == w or (r, w) in PROMOTIONS)
    if _kind(r) != _kind(w):
        return False
    return _kind(r) in ("array", "map") or _names_match(r, w)


def _describe(node: Any) -> str:
    if isinstance(node, str):
        return f"'{node}'"
    if isinstance(node, list):
        return "union"
    kind = _kind(node)
    if kind in ("record", "enum", "fixed"):
        return f"{kind} '{node.get('name')}'"
    return f"'{kind}'"
