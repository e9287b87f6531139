"""The restriction cache: per controller, effective at once locally, refreshed when the table changes."""

from __future__ import annotations

from streams.rights.restrictions import Restrictions


class _Table:
    def __init__(self) -> None:
        self.version = 0
        self.rows: dict[str, dict[str, str]] = {}
        self.loads = 0
        self.fail = False

    def load(self) -> tuple[int, dict[str, dict[str, str]]]:
        self.loads += 1
        return self.version, {p: dict(t) for p, t in self.rows.items()}

    def current(self) -> int:
        if self.fail:
            raise ConnectionError("down")
        return self.version


def test_restrictions_are_per_controller_and_immediate_locally() -> None:
    table = _Table()
    r = Restrictions(table.load, table.current, clock=lambda: 0.0)
    assert not r.active("schools") and r.match("schools", ["t1"]) is None
    r.add("schools", ["t1", "t2"], "req1")
    assert r.match("schools", ["x", "t2"]) == "req1"
    assert r.match("police", ["t1"]) is None  # another controller's events are not restricted
    r.remove("schools", ["t1", "t2"])
    assert not r.active("schools")


def test_changes_made_elsewhere_arrive_after_the_refresh_interval() -> None:
    table, now = _Table(), [0.0]
    r = Restrictions(table.load, table.current, refresh_seconds=2.0, clock=lambda: now[0])
    table.rows, table.version = {"schools": {"t1": "req1"}}, 1
    now[0] = 1.0
    r.refresh()
    assert r.match("schools", ["t1"]) is None and table.loads == 1  # not asked yet
    now[0] = 2.5
    r.refresh()
    assert r.match("schools", ["t1"]) == "req1" and table.loads == 2
    now[0] = 5.0
    r.refresh()
    assert table.loads == 2  # same version: no reload


def test_an_unreachable_table_keeps_the_last_known_set() -> None:
    table, now = _Table(), [0.0]
    table.rows, table.version = {"schools": {"t1": "req1"}}, 1
    r = Restrictions(table.load, table.current, clock=lambda: now[0])
    table.fail, now[0] = True, 10.0
    r.refresh()
    assert r.match("schools", ["t1"]) == "req1"
