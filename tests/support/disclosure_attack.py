"""An attacker on published area tables: what can be learnt about cells below the threshold?

Issue 17, finding 5, as a reusable check. The attacker sees only what `views.area_counts` (or the
API, or the sink) publishes: every version of every row, over time. Given the true number of
people per cell (which the test knows and the attacker does not), `attack` reports each thing the
attacker learns that small-number control exists to prevent:

- `small value`: a published value between 1 and the threshold;
- `person count`: a published cell whose true number of people is between 1 and the threshold (an
  event count made one person look like a group);
- `difference`: two versions of one period whose published value of an entry differs by 1 to
  threshold-1 (the new events, located by the row and column totals that moved);
- `exact`: a suppressed cell with 1 to threshold-1 people whose value the published totals pin down;
- `exists`: a suppressed cell with 1 to threshold-1 people that the published values prove is not
  zero (a "*" among published zeros).

`exact` and `exists` solve two linear programmes per suppressed cell (scipy's HiGHS): the least and
the greatest value the cell can take in any table of non-negative counts that agrees with what was
published, where a published value `p` rounded to base `b` may be anything that rounds to `p`, a
published zero is a true zero, and a suppressed value is at least 1 when zeros are published
(else at least 0). Upper bounds of suppressed values are not assumed (a complement may be large).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.optimize import linprog

from streams.privacy.disclosure import SuppressedTable

Truth = Mapping[str, Mapping[str, int]]  # area -> factor -> people


@dataclass(frozen=True)
class Published(SuppressedTable):
    """One version of one period's table as the attacker reads it (None: suppressed)."""

    week: str = field(kw_only=True)

    @classmethod
    def of(cls, week: str, doc: Mapping[str, Any]) -> Published:
        return cls.from_dict(doc, week=week)

    def entries(self) -> dict[tuple[str, str], int | None]:
        """(area, factor) -> value, with the margins under "ALL"."""
        out: dict[tuple[str, str], int | None] = {}
        for i, area in enumerate(self.rows):
            for j, factor in enumerate(self.cols):
                out[(area, factor)] = self.cells[i][j]
            out[(area, "ALL")] = self.row_totals[i]
        for j, factor in enumerate(self.cols):
            out[("ALL", factor)] = self.col_totals[j]
        out[("ALL", "ALL")] = self.total
        return out


def from_area_records(records: Iterable[Mapping[str, Any]]) -> list[Published]:
    """Every version of every week from `views.area_counts` values in topic order.

    The rows of one publication arrive one by one, so a new row only completes the week; a record
    that CHANGES a row already seen is a re-publication, and the week as it stood just before it is
    a version. The last state of each week is a version too. Records are the decoded Avro values
    (`area`, `week`, `counts`, `total`, ...).
    """
    latest: dict[str, dict[str, Mapping[str, Any]]] = {}
    versions: list[Published] = []
    for record in records:
        week, area = record["week"], record["area"]
        seen = latest.setdefault(week, {})
        if area in seen and seen[area] != record:
            versions += _table(week, seen)
        seen[area] = record
    for week, rows in latest.items():
        versions += _table(week, rows)
    return _distinct(versions)


def _table(week: str, latest: Mapping[str, Mapping[str, Any]]) -> list[Published]:
    rows = {a: r for a, r in latest.items() if a != "ALL"}
    margin = latest.get("ALL")
    if margin is None or not rows:
        return []
    cols = [c["factor"] for c in margin["counts"]]
    areas = sorted(rows)
    if any([c["factor"] for c in rows[a]["counts"]] != cols for a in areas):
        return []  # a week part-way through being re-sent with other columns
    doc = {
        "rows": areas,
        "cols": cols,
        "cells": [[c["count"] for c in rows[a]["counts"]] for a in areas],
        "row_totals": [rows[a]["total"] for a in areas],
        "col_totals": [c["count"] for c in margin["counts"]],
        "total": margin["total"],
        "threshold": margin["threshold"],
        "round_to": margin["round_to"],
        "zeros_hidden": margin.get("zeros_hidden", False),
    }
    return [Published.of(week, doc)]


def _distinct(versions: Sequence[Published]) -> list[Published]:
    out: list[Published] = []
    for v in versions:
        if not any(o == v for o in out if o.week == v.week):
            out.append(v)
    return out


def _interval(value: int, base: int, threshold: int) -> tuple[float, float]:
    """What a published value can stand for."""
    if base <= 1 or value == 0:
        return float(value), float(value)
    low = value - base // 2
    high = value + (base - 1) // 2
    return float(max(low, threshold)), float(high)


def bounds(table: Published) -> dict[tuple[str, str], tuple[float, float]]:
    """Least and greatest value of each suppressed cell (not margin) consistent with the table.

    {} when no table is consistent with it: a week read part-way through being re-published, whose
    rows come from two versions (each row is still a real published record, for `difference`).
    """
    entries = table.entries()
    names = list(entries)
    index = {k: i for i, k in enumerate(names)}
    floor = 0.0 if table.zeros_hidden else 1.0
    var_bounds = []
    for key in names:
        value = entries[key]
        if value is None:
            var_bounds.append((floor, None))
        else:
            var_bounds.append(_interval(value, table.round_to, table.threshold))
    equalities = []
    for area in (*table.rows, "ALL"):  # each row (and the margin row) sums to its total
        row = np.zeros(len(names))
        for factor in table.cols:
            row[index[(area, factor)]] = 1
        row[index[(area, "ALL")]] = -1
        equalities.append(row)
    for factor in (*table.cols, "ALL"):
        col = np.zeros(len(names))
        for area in table.rows:
            col[index[(area, factor)]] = 1
        col[index[("ALL", factor)]] = -1
        equalities.append(col)
    a_eq, b_eq = np.array(equalities), np.zeros(len(equalities))
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for key in names:
        if entries[key] is not None or "ALL" in key:
            continue
        c = np.zeros(len(names))
        c[index[key]] = 1
        low = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=var_bounds, method="highs")
        high = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=var_bounds, method="highs")
        if low.status == 2:  # infeasible: rows of two versions, read part-way through a re-publication
            return {}
        out[key] = (low.fun, float("inf") if high.status == 3 else -high.fun)
    return out


def attack(
    versions: Sequence[Published], truth: Mapping[str, Truth] | Callable[[Published], Truth]
) -> list[str]:
    """Everything learnt below the threshold, one line each; [] means the attacker learnt nothing.

    `truth` gives the true people per cell behind a version: per week, or per version (a live table
    whose truth changed between versions).
    """
    truth_of = truth if callable(truth) else (lambda v: truth.get(v.week, {}))
    found: list[str] = []
    by_week: dict[str, list[Published]] = {}
    for v in versions:
        by_week.setdefault(v.week, []).append(v)
    for week, tables in sorted(by_week.items()):
        for t in tables:
            people = truth_of(t)
            threshold = t.threshold
            for key, value in t.entries().items():
                if value is not None and 0 < value < threshold:
                    found.append(f"small value: {week} {key} published as {value}")
                if value and "ALL" not in key:
                    n = people.get(key[0], {}).get(key[1], 0)
                    if 0 < n < threshold:
                        found.append(f"person count: {week} {key} has {n} people, published as {value}")
            for key, (low, high) in bounds(t).items():
                n = people.get(key[0], {}).get(key[1], 0)
                if 0 < n < threshold and high - low < 0.5:
                    found.append(f"exact: {week} {key} = {low:g}")
                elif 0 < n < threshold and low >= 0.5:
                    found.append(f"exists: {week} {key} >= {low:g}")
        for before, after in pairwise(tables):
            old, new = before.entries(), after.entries()
            for key in old.keys() & new.keys():
                a, b = old[key], new[key]
                if a is not None and b is not None and 0 < abs(a - b) < before.threshold:
                    found.append(f"difference: {week} {key} moved {a} -> {b}")
    return found
