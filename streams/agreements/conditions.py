"""Row conditions (`where`): checked against the field types once, compiled into one closure.

The compiled check returns None when the event passes and the denial reason otherwise. On a path
through an array (`people[].role`) a test passes when any element passes, except `not_in`, which
needs every element outside the list ("no suspect under 10"). A missing value fails `in`, `equals`
and `age_under` (an unknown or unreadable age is not "under 25") and passes `not_in`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from streams.agreements.model import Condition
from streams.agreements.selection import Problem, is_date_of_birth
from streams.agreements.tree import Node
from streams.avro import paths
from streams.errors import ValidationError
from streams.privacy.identifiers import normalise_dob
from streams.privacy.operators.age_band import event_date
from streams.privacy.operators.base import avro_kind

__all__ = ["Check", "check_conditions", "compile_conditions"]

Check = Callable[[Mapping[str, Any]], str | None]  # event -> None (passes) or the denial reason
Test = Callable[[Any, Mapping[str, Any]], bool]  # (value, event) -> passes

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
}


# --- checking ------------------------------------------------------------------------------------


def check_conditions(conditions: Sequence[Condition], nodes: Mapping[str, Node], key: str) -> list[Problem]:
    """Problems with `conditions` (fields exist, are leaves, operands fit the field's type)."""
    problems: list[Problem] = []
    for i, cond in enumerate(conditions):
        _check(cond, nodes, f"{key}[{i}]", problems)
    return problems


def _check(cond: Condition, nodes: Mapping[str, Node], key: str, problems: list[Problem]) -> None:
    if cond.any_of is not None:
        for i, sub in enumerate(cond.any_of):
            _check(sub, nodes, f"{key}.any_of[{i}]", problems)
        return
    path = str(cond.field)
    node = nodes.get(path)
    if node is None:
        problems.append(Problem(f"{key}.field", f"no such field {path}"))
        return
    if not node.is_leaf:
        problems.append(Problem(f"{key}.field", f"{path} is a record: test one of its fields"))
        return
    kind = avro_kind(node.avro_type)
    if cond.test == "age_under":
        if not is_date_of_birth(node):
            problems.append(Problem(f"{key}.age_under", f"{path} is {kind}, not a date"))
        return
    operands = cond.operand if isinstance(cond.operand, list) else [cond.operand]
    for value in operands:
        message = _operand_problem(node, kind, value)
        if message:
            problems.append(Problem(f"{key}.{cond.test}", message))


def _operand_problem(node: Node, kind: str, value: Any) -> str | None:
    if value is None:
        return None if node.nullable else f"{node.path} is never null"
    if kind == "enum":
        symbols = node.avro_type.get("symbols", [])
        return None if value in symbols else f"{value!r} is not a value of {node.path} ({', '.join(symbols)})"
    allowed = _PYTHON_TYPES.get(kind)
    if allowed is None:
        return f"cannot compare a {kind} field ({node.path})"
    if isinstance(value, bool) and bool not in allowed:
        return f"{value!r} is not a {kind} ({node.path})"
    return None if isinstance(value, allowed) else f"{value!r} is not a {kind} ({node.path})"


# --- compiling -----------------------------------------------------------------------------------


def compile_conditions(conditions: Sequence[Condition]) -> Check | None:
    """One closure running every condition in order (None when there are none)."""
    if not conditions:
        return None
    checks = tuple(_compile(c) for c in conditions)
    if len(checks) == 1:
        return checks[0]

    def all_of(event: Mapping[str, Any]) -> str | None:
        for check in checks:
            reason = check(event)
            if reason is not None:
                return reason
        return None

    return all_of


def _compile(cond: Condition) -> Check:
    reason = f"row condition failed: {cond.describe()}"
    passes = _passes(cond)

    def check(event: Mapping[str, Any]) -> str | None:
        return None if passes(event) else reason

    return check


def _passes(cond: Condition) -> Callable[[Mapping[str, Any]], bool]:
    if cond.any_of is not None:
        subs = tuple(_passes(c) for c in cond.any_of)
        return lambda event: any(p(event) for p in subs)
    path, test = str(cond.field), _test(cond)
    if "[]" not in path:
        get = paths.getter(path)
        return lambda event: test(get(event), event)
    get_all = paths.fanout(path)
    if cond.test == "not_in":
        return lambda event: all(test(v, event) for v in get_all(event))
    return lambda event: any(test(v, event) for v in get_all(event))


def _test(cond: Condition) -> Test:
    test, operand = cond.test, cond.operand
    if test == "in":
        values = frozenset(operand)
        return lambda v, event: v is not None and v in values
    if test == "not_in":
        excluded = frozenset(operand)
        return lambda v, event: v not in excluded
    if test == "equals":
        return lambda v, event: v == operand
    limit = int(operand)

    def age_under(v: Any, event: Mapping[str, Any]) -> bool:
        if v is None:
            return False
        try:
            dob = v if type(v) is date else normalise_dob(v)
        except ValidationError:  # an unreadable date of birth is not "under N"
            return False
        on = event_date(event)
        return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day)) < limit

    return age_under
