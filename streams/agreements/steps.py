"""The per-event building blocks of a plan: small closures fused into one builder per record.

A record builder runs a fixed tuple of steps, each writing one or more output keys: a run of kept
fields is copied in one C-level `update`, a transformed field calls its bound operator (None passes
through untouched), a nested record or array of records recurses into its own builder. Nothing here
looks anything up by name at run time beyond the dict reads the output needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

from streams.agreements.selection import FieldRule
from streams.agreements.tree import Node
from streams.errors import ValidationError
from streams.privacy.identifiers import InvalidIdentifier
from streams.privacy.operators import Transform

__all__ = ["Builder", "Denied", "FieldError", "record_builder"]

Invalid = list[tuple[str, str]]  # (path, identifier kind) withheld in this event
Step = Callable[[Mapping[str, Any], dict[str, Any], Mapping[str, Any], Invalid], None]
Builder = Callable[[Mapping[str, Any], Mapping[str, Any], Invalid], dict[str, Any]]


class Denied(Exception):
    """An invalid identifier under `on_invalid_identifier: deny_event`."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(path, kind)
        self.path, self.kind = path, kind


class FieldError(Exception):
    """A transform failed; `reason` names the field and the error type, never the value."""

    def __init__(self, path: str, exc: Exception) -> None:
        detail = f": {exc.reason}" if isinstance(exc, ValidationError) else ""  # reasons never hold values
        self.reason = f"{path}: {type(exc).__name__}{detail}"
        super().__init__(self.reason)


def record_builder(
    nodes: tuple[Node, ...], rules: Mapping[str, FieldRule], transforms: Mapping[str, Transform], deny: bool
) -> Builder | None:
    """Builder of one record's output, or None when nothing in it is released."""
    steps: list[Step] = []
    run: list[str] = []
    for node in nodes:
        step: Step | None
        if node.is_leaf:
            rule = rules.get(node.path)
            if rule is None or not rule.released:
                continue
            if not rule.transformed:
                run.append(node.name)
                continue
            step = _transform_step(node.name, node.path, transforms[node.path], deny)
        else:
            child = record_builder(node.children, rules, transforms, deny)
            if child is None:
                continue
            step = _array_step(node.name, child) if node.is_array else _record_step(node.name, child)
        if run:
            steps.append(_keep_step(tuple(run)))
            run = []
        steps.append(step)
    if run:
        steps.append(_keep_step(tuple(run)))
    return _fuse(tuple(steps)) if steps else None


def _fuse(steps: tuple[Step, ...]) -> Builder:
    if len(steps) == 1:
        (only,) = steps

        def build_one(src: Mapping[str, Any], event: Mapping[str, Any], invalid: Invalid) -> dict[str, Any]:
            out: dict[str, Any] = {}
            only(src, out, event, invalid)
            return out

        return build_one

    def build(src: Mapping[str, Any], event: Mapping[str, Any], invalid: Invalid) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for step in steps:
            step(src, out, event, invalid)
        return out

    return build


def _keep_step(names: tuple[str, ...]) -> Step:
    if len(names) == 1:
        (name,) = names

        def keep_one(
            src: Mapping[str, Any], out: dict[str, Any], event: Mapping[str, Any], invalid: Invalid
        ) -> None:
            out[name] = src[name]

        return keep_one
    get = itemgetter(*names)

    def keep(src: Mapping[str, Any], out: dict[str, Any], event: Mapping[str, Any], invalid: Invalid) -> None:
        out.update(zip(names, get(src), strict=True))

    return keep


def _transform_step(name: str, path: str, transform: Transform, deny: bool) -> Step:
    def step(src: Mapping[str, Any], out: dict[str, Any], event: Mapping[str, Any], invalid: Invalid) -> None:
        value = src[name]
        if value is not None:
            try:
                value = transform(value, event)
            except InvalidIdentifier as exc:
                if deny:
                    raise Denied(path, exc.kind) from None
                invalid.append((path, exc.kind))
                value = None
            except Exception as exc:
                raise FieldError(path, exc) from exc
        out[name] = value

    return step


def _record_step(name: str, build: Builder) -> Step:
    def step(src: Mapping[str, Any], out: dict[str, Any], event: Mapping[str, Any], invalid: Invalid) -> None:
        value = src[name]
        out[name] = None if value is None else build(value, event, invalid)

    return step


def _array_step(name: str, build: Builder) -> Step:
    def step(src: Mapping[str, Any], out: dict[str, Any], event: Mapping[str, Any], invalid: Invalid) -> None:
        value = src[name]
        out[name] = None if value is None else [build(item, event, invalid) for item in value]

    return step
