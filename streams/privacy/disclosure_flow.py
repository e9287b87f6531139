"""Can a suppressed value be zero? The interval half of the audit in `streams.privacy.disclosure`.

When zeros are suppressed too, a reader of a published table knows every suppressed value is at
least 0. A small count is protected only if the published values are also consistent with it
being 0: otherwise the reader learns that someone is there (and a lower bound on how many), which
is what a "*" among published zeros would give away (docs/disclosure-control.md).

The extended table (cells, row totals, column totals, grand total) is a bipartite graph of its
lines: row r and column c joined by entry (r, c). With totals entering their lines with a minus
sign, every change that keeps the published entries and the line sums is a circulation on the
suppressed entries (the constraint matrix is a network matrix). An entry can fall by its whole
value iff that much flow can return around the rest of the graph, each suppressed entry carrying
at most its own value in the direction that lowers it and anything in the direction that raises
it: a maximum-flow problem (Edmonds-Karp; the graph has one node per line, tens at most).
"""

from __future__ import annotations

from collections import deque

Entry = tuple[int, int]
_UNBOUNDED = 1 << 60

__all__ = ["can_reach_zero"]


def _sign(grid: list[list[int]], e: Entry) -> int:
    n, m = len(grid) - 1, len(grid[0]) - 1
    return -1 if (e[0] == n) != (e[1] == m) else 1


def can_reach_zero(grid: list[list[int]], hidden: set[Entry], entry: Entry) -> bool:
    """Is some table that agrees with every published entry, all values >= 0, zero at `entry`?"""
    value = grid[entry[0]][entry[1]]
    if value == 0:
        return True
    rows = len(grid)
    cap: dict[int, dict[int, int]] = {}

    def arc(u: int, v: int, c: int) -> None:
        cap.setdefault(u, {})[v] = cap.get(u, {}).get(v, 0) + c
        cap.setdefault(v, {}).setdefault(u, 0)

    for i, j in hidden:
        if (i, j) == entry:
            continue
        row, col, v = i, rows + j, grid[i][j]
        if _sign(grid, (i, j)) > 0:  # raising y raises the value; lowering it is bounded by the value
            arc(row, col, _UNBOUNDED)
            arc(col, row, v)
        else:
            arc(row, col, v)
            arc(col, row, _UNBOUNDED)
    r, c = entry[0], rows + entry[1]
    source, sink = (r, c) if _sign(grid, entry) > 0 else (c, r)
    return _max_flow(cap, source, sink, value) >= value


def _max_flow(cap: dict[int, dict[int, int]], source: int, sink: int, enough: int) -> int:
    """Edmonds-Karp, stopping once `enough` has been pushed."""
    flow = 0
    while flow < enough:
        parent = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            u = queue.popleft()
            for v, c in cap.get(u, {}).items():
                if c > 0 and v not in parent:
                    parent[v] = u
                    queue.append(v)
        if sink not in parent:
            return flow
        push, v = enough - flow, sink
        while v != source:
            push = min(push, cap[parent[v]][v])
            v = parent[v]
        v = sink
        while v != source:
            u = parent[v]
            cap[u][v] -= push
            cap[v][u] += push
            v = u
        flow += push
    return flow
