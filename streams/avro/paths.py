"""The field-path grammar: how the catalogue, agreements and requests name a value inside an event.

A path is record field names joined by dots (`subject.nhs_number`). `name[]` fans out over an array
of records (`people[].subject.upn`: every person's UPN), as the catalogue writes its field paths; a
correction names one item instead (`people[2].role`). Reading never raises: a field missing on the
way reads as None, and a missing array gives no values, so a getter works on any decoded event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "SCALAR_PATH",
    "PathError",
    "assign",
    "catalogue_form",
    "fanout",
    "getter",
    "split",
    "values",
]

# A path of record fields only, no arrays: for settings that name one value (a pydantic `pattern`).
SCALAR_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
_INDEXED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?$")
_INDEX = re.compile(r"\[\d+\]")

Getter = Callable[[Mapping[str, Any]], Any]
Fanout = Callable[[Any], list[Any]]


class PathError(ValueError):
    """A path that does not fit the grammar or the value it is applied to (the message says which)."""


def split(path: str) -> list[str]:
    """The steps of `path` (`people[]` stays one step: the array and its fan-out)."""
    return path.split(".")


def catalogue_form(path: str) -> str:
    """`path` with array indices written `[]`, the form the catalogue lists its fields in."""
    return _INDEX.sub("[]", path)


def _child(node: Any, name: str) -> Any:
    # dict first: the ABC check is slow and decoded events are plain dicts
    return node.get(name) if type(node) is dict or isinstance(node, Mapping) else None


def getter(path: str) -> Getter:
    """A function reading the one value at `path` (no `[]` steps) from an event, None if absent.

    Built once per path and called per event, so the common one- and two-step paths get their own
    closures without a loop.
    """
    names = split(path)
    if any(n.endswith("[]") for n in names):
        raise PathError(f"{path!r} fans out over an array: read it with fanout()")
    if len(names) == 1:
        (a,) = names
        return lambda event: _child(event, a)
    if len(names) == 2:
        a, b = names
        return lambda event: _child(_child(event, a), b)

    def get(event: Mapping[str, Any]) -> Any:
        node: Any = event
        for name in names:
            node = _child(node, name)
        return node

    return get


def fanout(path: str) -> Fanout:
    """A function listing every value at `path` below a node, one per array item on the way.

    A missing record field gives None (`subject.upn` of an event without a subject is [None]); a
    missing array gives nothing, so `people[].role` of an event without people is [].
    """
    steps = [(n[:-2], True) if n.endswith("[]") else (n, False) for n in split(path)]

    def walk(node: Any) -> list[Any]:
        found = [node]
        for name, many in steps:
            found = [_child(n, name) for n in found]
            if many:
                found = [item for items in found if isinstance(items, list) for item in items]
        return found

    return walk


def values(node: Any, path: str) -> list[Any]:
    """Every value at `path` below `node` (see `fanout`); for one-off reads, not per-event loops."""
    return fanout(path)(node)


def assign(node: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at `path` (steps may index an array item, `people[2].role`) inside `node`.

    A missing record on the way is created (correcting `subject.upn` of an event with no subject);
    a step through a plain value or past the end of an array raises PathError.
    """
    parts = split(path)
    here: Any = node
    for i, part in enumerate(parts):
        m = _INDEXED.match(part)
        if m is None:
            raise PathError(f"{path[:80]!r} is not a dotted field path")
        name, index, last = m.group("name"), m.group("index"), i == len(parts) - 1
        if not isinstance(here, dict):
            raise PathError(f"{path[:80]!r} goes through a value, not a record")
        if index is None:
            if last:
                here[name] = value
                return
            if here.get(name) is None:
                here[name] = {}
            here = here[name]
            continue
        items = here.get(name)
        if not isinstance(items, list) or int(index) >= len(items):
            raise PathError(f"{path[:80]!r}: no item {index} in {name}")
        if last:
            items[int(index)] = value
            return
        here = items[int(index)]
