"""Small-number suppression for 2-D aggregate tables (areas x factors for one week).

Nothing aggregated leaves the bus without passing through `suppress` (DOMAIN.md, control 9).

Policy, and why:
- **Primary suppression**: a cell or total `n` with `0 < n < threshold` is withheld (published as
  `None`, shown as "*").
- **Zeros are published as 0** (UK practice): "nothing was recorded here" is not information about
  a person. Zeros are never suppressed, not even as complements, so a reader knows that every
  suppressed value is at least 1, and the audit below assumes exactly that attacker. This is what
  makes a 0 next to a total harmless: the audit sees the zeros as published constants.
- **Totals** are the true totals (suppressed cells included), published unless they are themselves
  small, in which case they are suppressed like any cell.
- **Secondary suppression** treats the table with its margins as one (R+1)x(C+1) grid in which every
  line (row or column, total included) sums to zero with signs. First every line with exactly one
  suppressed entry gets a second one (the smallest non-zero cell of the line, a total only when no
  cell is left), to a fixed point. Then an exact audit: a suppressed entry is recoverable from the
  published values iff no feasible +-1 move along a cycle of suppressed entries changes it (the
  constraint matrix is totally unimodular, so integer and LP bounds agree, and any feasible change
  decomposes into such cycles). Each exposed entry gets one more complement (the smallest cell in
  its row or column that protects it; totals last) until nothing is exposed. Suppressing every
  non-zero total always protects everything, so the loop terminates.
- **Rounding** (optional, `round_to=5`): published values are rounded half up to the base after the
  suppression pattern is chosen on true values.
- **Hidden zeros** (`hide_zeros=True`, what the frozen area snapshots use): every value below the
  threshold, zero included, is suppressed, so "*" means "fewer than the threshold, possibly none".
  A lone "*" among zeros then no longer says that someone exists there. The audit lets a
  suppressed value go down to 0 instead of 1, and also requires every small suppressed value to
  be consistent with 0 given everything published (`streams.privacy.disclosure_flow`): otherwise
  the totals would prove that someone is there, and how many at least.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from streams.privacy.disclosure_flow import can_reach_zero

Entry = tuple[int, int]

__all__ = ["SuppressedTable", "suppress"]


@dataclass(frozen=True)
class SuppressedTable:
    """A published table: `None` marks a suppressed value; nothing small and non-zero is in here."""

    rows: tuple[str, ...]
    cols: tuple[str, ...]
    cells: tuple[tuple[int | None, ...], ...]
    row_totals: tuple[int | None, ...]
    col_totals: tuple[int | None, ...]
    total: int | None
    threshold: int
    round_to: int
    zeros_hidden: bool = False

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], **extra: Any) -> Self:
        """The table `to_dict` wrote, as a recipient reads it back (`extra`: a subclass's fields)."""
        return cls(
            rows=tuple(doc["rows"]),
            cols=tuple(doc["cols"]),
            cells=tuple(tuple(r) for r in doc["cells"]),
            row_totals=tuple(doc["row_totals"]),
            col_totals=tuple(doc["col_totals"]),
            total=doc["total"],
            threshold=int(doc["threshold"]),
            round_to=int(doc["round_to"]),
            zeros_hidden=bool(doc.get("zeros_hidden", False)),
            **extra,
        )

    def cell(self, row: str, col: str) -> int | None:
        return self.cells[self.rows.index(row)][self.cols.index(col)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": list(self.rows),
            "cols": list(self.cols),
            "cells": [list(r) for r in self.cells],
            "row_totals": list(self.row_totals),
            "col_totals": list(self.col_totals),
            "total": self.total,
            "threshold": self.threshold,
            "round_to": self.round_to,
            "zeros_hidden": self.zeros_hidden,
        }


def suppress(
    table: Mapping[str, Mapping[str, int]],
    threshold: int = 10,
    round_to: int = 0,
    *,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    hide_zeros: bool = False,
) -> SuppressedTable:
    """Suppress `table` (row -> col -> count; missing = 0) for publication.

    `rows`/`cols` fix the order and let empty rows or columns (e.g. every known factor) appear.
    """
    if threshold < 1:
        raise ValueError("threshold must be >= 1")
    if round_to < 0:
        raise ValueError("round_to must be >= 0")
    row_keys = tuple(rows) if rows is not None else tuple(sorted(table))
    col_keys = tuple(cols) if cols is not None else tuple(sorted({c for r in table.values() for c in r}))
    grid = _extended(table, row_keys, col_keys)
    hidden = _choose(grid, threshold, 0 if hide_zeros else 1)
    n_rows, n_cols = len(row_keys), len(col_keys)

    def pub(i: int, j: int) -> int | None:
        return None if (i, j) in hidden else _round(grid[i][j], round_to)

    return SuppressedTable(
        rows=row_keys,
        cols=col_keys,
        cells=tuple(tuple(pub(i, j) for j in range(n_cols)) for i in range(n_rows)),
        row_totals=tuple(pub(i, n_cols) for i in range(n_rows)),
        col_totals=tuple(pub(n_rows, j) for j in range(n_cols)),
        total=pub(n_rows, n_cols),
        threshold=threshold,
        round_to=round_to,
        zeros_hidden=hide_zeros,
    )


def _round(value: int, base: int) -> int:
    return value if base <= 1 else ((value + base // 2) // base) * base


def _extended(
    table: Mapping[str, Mapping[str, int]], rows: Sequence[str], cols: Sequence[str]
) -> list[list[int]]:
    """Cells plus a totals column, a totals row and the grand total in the corner."""
    grid = [[int(table.get(r, {}).get(c, 0)) for c in cols] for r in rows]
    for r in grid:
        if any(v < 0 for v in r):
            raise ValueError("counts must be non-negative")
        r.append(sum(r))
    grid.append([sum(col) for col in zip(*grid, strict=True)] if grid else [0] * (len(cols) + 1))
    return grid


def _choose(grid: list[list[int]], threshold: int, floor: int) -> set[Entry]:
    """The suppression pattern: primary, then complements until the audit finds nothing exposed.

    `floor` is the least value a reader knows a suppressed entry has: 1 when zeros are published
    (so every "*" is at least 1), 0 when zeros are suppressed too.
    """
    hidden = {(i, j) for i, r in enumerate(grid) for j, v in enumerate(r) if floor <= v < threshold}
    if not hidden:
        return hidden
    lines = _lines(len(grid), len(grid[0]))
    small = {e for e in hidden if grid[e[0]][e[1]] > 0} if floor == 0 else set()
    while True:
        _pair_lines(grid, hidden, lines)
        exposed = _first_exposed(grid, hidden, floor, small)
        if exposed is None:
            return hidden
        _protect(grid, hidden, exposed, lines, floor, small)


def _lines(n: int, m: int) -> list[list[Entry]]:
    """Every row and column of the extended grid, each listing its entries (its total last)."""
    return [[(i, j) for j in range(m)] for i in range(n)] + [[(i, j) for i in range(n)] for j in range(m)]


def _cost(grid: list[list[int]], e: Entry) -> tuple[int, int, Entry]:
    """Preference order for complements: cells before totals, then the smallest value."""
    n, m = len(grid) - 1, len(grid[0]) - 1
    return ((e[0] == n) + (e[1] == m), grid[e[0]][e[1]], e)


def _candidates(grid: list[list[int]], hidden: set[Entry], entries: Iterable[Entry]) -> list[Entry]:
    found = {e for e in entries if e not in hidden and grid[e[0]][e[1]] > 0}
    return sorted(found, key=lambda e: _cost(grid, e))


def _pair_lines(grid: list[list[int]], hidden: set[Entry], lines: list[list[Entry]]) -> None:
    """No line may hold exactly one suppressed entry (it would equal the line's other values).

    A suppressed zero alone in its line needs no partner: working it out gives 0, nobody.
    """
    changed = True
    while changed:
        changed = False
        for line in lines:
            alone = [e for e in line if e in hidden]
            if len(alone) == 1 and grid[alone[0][0]][alone[0][1]] > 0:
                options = _candidates(grid, hidden, line)
                if options:
                    hidden.add(options[0])
                    changed = True


def _safe(grid: list[list[int]], hidden: set[Entry], e: Entry, floor: int, small: set[Entry]) -> bool:
    """Is `e` neither recoverable nor (a small count) provably above zero?"""
    if not _movable(grid, _adjacency(hidden), e, floor):
        return False
    return e not in small or can_reach_zero(grid, hidden, e)


def _first_exposed(grid: list[list[int]], hidden: set[Entry], floor: int, small: set[Entry]) -> Entry | None:
    """The first suppressed count the published values would give away. A suppressed zero may be
    worked out (that nobody is there says nothing about anyone); every other entry may not."""
    for e in sorted(hidden):
        if grid[e[0]][e[1]] == 0:
            continue
        if not _safe(grid, hidden, e, floor, small):
            return e
    return None


def _protect(
    grid: list[list[int]],
    hidden: set[Entry],
    exposed: Entry,
    lines: list[list[Entry]],
    floor: int,
    small: set[Entry],
) -> None:
    """Add the cheapest complement in the exposed entry's row or column that protects it."""
    r, c = exposed
    options = _candidates(grid, hidden, lines[r] + lines[len(grid) + c])
    for option in options:
        trial = hidden | {option}
        if _safe(grid, trial, exposed, floor, small):
            hidden.add(option)
            return
    if options:
        hidden.add(options[0])
        return
    rest = _candidates(grid, hidden, [(i, j) for i, row in enumerate(grid) for j in range(len(row))])
    if not rest:  # cannot happen: with every non-zero total suppressed all entries can move up
        raise RuntimeError(f"suppression cannot protect entry {exposed}")
    hidden.add(rest[-1])  # totals sort last, the grand total last of all


def _adjacency(hidden: set[Entry]) -> dict[tuple[str, int], list[int]]:
    adj: dict[tuple[str, int], list[int]] = {}
    for i, j in hidden:
        adj.setdefault(("r", i), []).append(j)
        adj.setdefault(("c", j), []).append(i)
    return adj


def _can_move(grid: list[list[int]], e: Entry, sign: int, floor: int) -> bool:
    """May entry `e` move by `sign` (in signed-line space) while every suppressed value stays >= floor?"""
    n, m = len(grid) - 1, len(grid[0]) - 1
    flip = -1 if (e[0] == n) != (e[1] == m) else 1  # totals enter their line with a minus sign
    return sign * flip > 0 or grid[e[0]][e[1]] > floor


def _movable(grid: list[list[int]], adj: dict[tuple[str, int], list[int]], e: Entry, floor: int) -> bool:
    """Is there another feasible table that differs in entry `e`? (BFS for an alternating cycle.)"""
    r, c = e
    for sign in (1, -1):
        if not _can_move(grid, e, sign, floor):
            continue
        seen_rows: set[int] = set()
        seen_cols = {c}
        queue: deque[int] = deque([c])
        while queue:
            col = queue.popleft()
            for row in adj.get(("c", col), ()):
                if row in seen_rows or (row, col) == e or not _can_move(grid, (row, col), -sign, floor):
                    continue
                if row == r:
                    return True
                seen_rows.add(row)
                for nxt in adj.get(("r", row), ()):
                    if nxt not in seen_cols and _can_move(grid, (row, nxt), sign, floor):
                        seen_cols.add(nxt)
                        queue.append(nxt)
    return False
