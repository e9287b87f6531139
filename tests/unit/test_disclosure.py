"""Suppression: small values never published, and no suppressed value recoverable from the margins.

The attacker is an exact rational simplex written here (independent of the cycle audit inside
`streams.privacy.disclosure`): for each suppressed entry it minimises and maximises its value subject to
every published value, every row/column sum and "each suppressed value is >= 1" (zeros are always
published, so an attacker knows that). The constraint matrix is totally unimodular, so LP bounds are
the integer bounds: min == max means the value is pinned down.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.privacy.disclosure import SuppressedTable, suppress


def _lp_max(a: list[list[int]], b: list[int], c: list[int]) -> Fraction | None:
    """max c.x s.t. a x = b, x >= 0 (feasible by construction); None when unbounded. Bland's rule."""
    m, n = len(a), len(c)
    rows: list[list[Fraction]] = []
    for i in range(m):
        sign = -1 if b[i] < 0 else 1
        rows.append(
            [Fraction(sign * v) for v in a[i]]
            + [Fraction(1 if k == i else 0) for k in range(m)]
            + [Fraction(sign * b[i])]
        )
    basis = [n + i for i in range(m)]

    def pivot(r: int, col: int) -> None:
        p = rows[r][col]
        rows[r] = [v / p for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][col] != 0:
                f = rows[i][col]
                rows[i] = [v - f * w for v, w in zip(rows[i], rows[r], strict=True)]
        basis[r] = col

    def run(obj: list[Fraction], allowed: int) -> bool:
        while True:
            col = next(
                (
                    j
                    for j in range(allowed)
                    if j not in basis
                    and obj[j] - sum(obj[basis[i]] * rows[i][j] for i in range(len(rows))) > 0
                ),
                None,
            )
            if col is None:
                return True
            ratios = [(rows[i][-1] / rows[i][col], basis[i], i) for i in range(len(rows)) if rows[i][col] > 0]
            if not ratios:
                return False
            pivot(min(ratios)[2], col)

    run([Fraction(0)] * n + [Fraction(-1)] * m, n + m)
    for r in range(len(rows) - 1, -1, -1):  # drive artificials out; drop redundant rows
        if basis[r] >= n:
            col = next((j for j in range(n) if rows[r][j] != 0), None)
            if col is None:
                del rows[r], basis[r]
            else:
                pivot(r, col)
    obj = [Fraction(v) for v in c] + [Fraction(0)] * m
    if not run(obj, n):
        return None
    return sum((obj[basis[i]] * rows[i][-1] for i in range(len(rows))), Fraction(0))


def _exposed(true: list[list[int]], pub: SuppressedTable) -> list[tuple[int, int]]:
    """Suppressed entries of the extended grid whose value the published table pins down."""
    n, m = len(pub.rows), len(pub.cols)
    grid = [[*r, t] for r, t in zip(true, [sum(r) for r in true], strict=True)]
    grid.append([sum(col) for col in zip(*grid, strict=True)])
    shown = [[*r, t] for r, t in zip(pub.cells, pub.row_totals, strict=True)] + [[*pub.col_totals, pub.total]]
    unknown = [(i, j) for i in range(n + 1) for j in range(m + 1) if shown[i][j] is None]
    index = {e: k for k, e in enumerate(unknown)}
    lines = [[(i, j) for j in range(m + 1)] for i in range(n + 1)]
    lines += [[(i, j) for i in range(n + 1)] for j in range(m + 1)]
    a: list[list[int]] = []
    b: list[int] = []
    for line in lines:  # sum of the line's cells - its total = 0; unknowns are 1 + x with x >= 0
        row, rhs = [0] * len(unknown), 0
        for k, (i, j) in enumerate(line):
            coef = -1 if k == len(line) - 1 else 1
            if (i, j) in index:
                row[index[(i, j)]] += coef
                rhs -= coef
            else:
                rhs -= coef * (shown[i][j] or 0)
        if any(row):
            a.append(row)
            b.append(rhs)
    pinned = []
    for e, k in index.items():
        unit = [1 if q == k else 0 for q in range(len(unknown))]
        hi = _lp_max(a, b, unit)
        lo = _lp_max(a, b, [-v for v in unit])
        assert lo is not None
        assert -lo <= grid[e[0]][e[1]] - 1 and (hi is None or hi >= grid[e[0]][e[1]] - 1)
        if hi is not None and hi == -lo:
            pinned.append(e)
    return pinned


def _as_table(true: list[list[int]]) -> dict[str, dict[str, int]]:
    return {f"a{i}": {f"f{j}": v for j, v in enumerate(r)} for i, r in enumerate(true)}


def _publish(true: list[list[int]], threshold: int = 10, round_to: int = 0) -> SuppressedTable:
    cols = [f"f{j}" for j in range(len(true[0]))]
    return suppress(_as_table(true), threshold, round_to, rows=[f"a{i}" for i in range(len(true))], cols=cols)


def test_attacker_pins_naive_patterns() -> None:
    lone = SuppressedTable(("a0", "a1"), ("f0", "f1"), ((None, 40), (20, 25)), (43, 45), (23, 65), 88, 10, 0)
    assert _exposed([[3, 40], [20, 25]], lone) == [(0, 0)]
    ones = [[1, 1, 50], [1, 1, 50], [30, 30, 30]]  # each line has two suppressed entries, yet all pinned
    square = SuppressedTable(
        ("a0", "a1", "a2"),
        ("f0", "f1", "f2"),
        ((None, None, 50), (None, None, 50), (30, 30, 30)),
        (52, 52, 90),
        (32, 32, 130),
        194,
        10,
        0,
    )
    assert sorted(_exposed(ones, square)) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_small_cells_are_suppressed_and_zeros_shown() -> None:
    pub = _publish([[0, 3, 40], [12, 25, 30], [15, 11, 50]])
    assert pub.cell("a0", "f0") == 0
    assert pub.cell("a0", "f1") is None
    assert pub.total == 186


def test_lone_small_cell_gets_a_complement_in_its_row_and_column() -> None:
    pub = _publish([[3, 40, 50], [20, 25, 30], [15, 11, 50]])
    assert pub.cells[0].count(None) >= 2
    assert [r[0] for r in pub.cells].count(None) >= 2
    assert _exposed([[3, 40, 50], [20, 25, 30], [15, 11, 50]], pub) == []


def test_complement_prefers_smallest_cell() -> None:
    pub = _publish([[3, 40, 12], [20, 25, 30], [15, 11, 50]])
    assert pub.cells[0] == (None, 40, None)


def test_small_total_is_suppressed_and_protected() -> None:
    true = [[2, 0, 0], [0, 30, 40], [0, 20, 60]]
    pub = _publish(true)
    assert pub.row_totals[0] is None and pub.col_totals[0] is None
    assert _exposed(true, pub) == []


def test_all_ones_square_cannot_be_pinned_by_lower_bounds() -> None:
    true = [[1, 1, 50], [1, 1, 50], [30, 30, 30]]  # a 2x2 cycle of ones is pinned when zeros are shown
    pub = _publish(true)
    assert _exposed(true, pub) == []


def test_rounding_to_five_after_suppression() -> None:
    pub = _publish([[12, 23, 40], [20, 26, 31], [15, 11, 50]], round_to=5)
    assert pub.cells[0] == (10, 25, 40)
    assert pub.cells[1] == (20, 25, 30)
    assert all(v is None or v % 5 == 0 for r in pub.cells for v in r)


def test_empty_and_all_large_tables() -> None:
    assert suppress({}).total == 0
    pub = _publish([[10, 20], [30, 40]])
    assert pub.cells == ((10, 20), (30, 40)) and pub.total == 100


def test_round_trips_through_dict() -> None:
    pub = _publish([[3, 40, 12], [20, 25, 30]])
    assert SuppressedTable.from_dict(pub.to_dict()) == pub


_values = st.one_of(st.integers(0, 3), st.integers(0, 12), st.integers(0, 40))


@settings(max_examples=120, deadline=None)
@given(
    st.integers(1, 5).flatmap(
        lambda c: st.lists(st.lists(_values, min_size=c, max_size=c), min_size=1, max_size=5)
    )
)
def test_no_suppressed_value_recoverable_from_published_margins(true: list[list[int]]) -> None:
    pub = _publish(true)
    grid = [[*r, sum(r)] for r in true]
    grid.append([sum(col) for col in zip(*grid, strict=True)])
    shown = [[*r, t] for r, t in zip(pub.cells, pub.row_totals, strict=True)] + [[*pub.col_totals, pub.total]]
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if 0 < v < 10:
                assert shown[i][j] is None
            if shown[i][j] is not None:
                assert shown[i][j] == v
            if v == 0:
                assert shown[i][j] == 0
    assert _exposed(true, pub) == []
