"""Periods and frozen snapshots: when a week may publish, what it publishes, and that it never changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.privacy.disclosure import SuppressedTable, suppress
from streams.settings import Settings
from streams.views.periods import is_closed, next_week, parse_week, week_close, week_start
from streams.views.snapshots import (
    DisclosureError,
    SnapshotLedger,
    SnapshotPolicy,
    check_published,
    snapshot,
)
from tests.support.disclosure_attack import Published, attack

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_weeks_open_close_and_follow_each_other() -> None:
    assert week_start("2026-W11") == datetime(2026, 3, 9, tzinfo=UTC)
    assert week_close("2026-W11") == datetime(2026, 3, 16, tzinfo=UTC)
    assert next_week("2026-W11") == "2026-W12"
    assert next_week("2026-W53") == "2027-W01" and next_week("2025-W52") == "2026-W01"
    assert not is_closed("2026-W11", datetime(2026, 3, 15, 23, 59, tzinfo=UTC))
    assert is_closed("2026-W11", datetime(2026, 3, 16, tzinfo=UTC))
    assert not is_closed("2026-W11", datetime(2026, 3, 18, 23, tzinfo=UTC), timedelta(hours=72))
    assert is_closed("2026-W11", datetime(2026, 3, 19, tzinfo=UTC), timedelta(hours=72))
    for bad in ("2026-11", "2025-W53", "2026-W00", "x"):
        with pytest.raises(ValueError):
            parse_week(bad)


def test_the_defaults_suppress_below_ten_and_round_to_five() -> None:
    """ONS / NHS England practice: suppression AND rounding on unless configured otherwise."""
    policy = SnapshotPolicy.from_settings(Settings())
    assert (policy.threshold, policy.round_to) == (10, 5)
    assert policy.lag == timedelta(hours=72) and policy.quiet == timedelta(minutes=10)
    assert SnapshotPolicy() == policy


def test_a_week_is_due_once_closed_lagged_and_quiet() -> None:
    policy = SnapshotPolicy(lag=timedelta(hours=72), quiet=timedelta(minutes=10))
    ledger = SnapshotLedger(policy, started=T0)
    closes = week_close("2026-W11")
    assert ledger.due(["2026-W11"], closes + timedelta(hours=71)) == []
    assert ledger.due(["2026-W11", "2026-W12"], closes + timedelta(hours=72)) == ["2026-W11"]
    ledger.touch(["2026-W11"], closes + timedelta(hours=72))  # a late event arrived
    assert ledger.due(["2026-W11"], closes + timedelta(hours=72, minutes=9)) == []
    assert ledger.due(["2026-W11"], closes + timedelta(hours=72, minutes=10)) == ["2026-W11"]
    restarted = SnapshotLedger(policy, started=closes + timedelta(days=30))
    assert restarted.due(["2026-W11"], closes + timedelta(days=30, minutes=5)) == []  # waits after start


def test_a_frozen_week_is_published_once_and_never_again() -> None:
    ledger = SnapshotLedger(SnapshotPolicy(), started=T0)
    first = ledger.freeze("2026-W11", {"RG1": {"a": 23, "b": 3}, "RG2": {"a": 40, "b": 14}}, ["a", "b"])
    assert first.cells == ((None, None), (None, None))  # 3 must be able to be 0: all four hidden
    assert first.row_totals == (25, 55) and first.col_totals == (65, 15) and first.total == 80  # rounded
    with pytest.raises(DisclosureError):
        ledger.freeze("2026-W11", {"RG1": {"a": 100}}, ["a"])
    assert ledger.get("2026-W11") == first
    assert "2026-W11" in ledger and ledger.due(["2026-W11"], T0 + timedelta(days=400)) == []
    back = SnapshotLedger(SnapshotPolicy(), started=T0)
    later = T0 + timedelta(days=100)
    back.reload([("2026-W11", first.to_dict())], now=later)
    assert back.get("2026-W11") == first and back.weeks() == ["2026-W11"]
    assert back.due(["2026-W12"], later + timedelta(minutes=9)) == []  # a new owner waits `quiet`
    assert back.due(["2026-W12"], later + timedelta(minutes=10)) == ["2026-W12"]


def test_check_published_refuses_small_values_and_visible_zeros() -> None:
    ok = suppress({"RG1": {"a": 12, "b": 0}}, 10, hide_zeros=False)
    check_published(ok)  # zeros are fine where they are published on purpose
    with pytest.raises(DisclosureError):
        check_published(SuppressedTable(("RG1",), ("a",), ((3,),), (3,), (3,), 3, 10, 0))
    with pytest.raises(DisclosureError):
        check_published(SuppressedTable(("RG1",), ("a",), ((0,),), (0,), (0,), 0, 10, 5, True))


def test_zeros_are_suppressed_so_a_star_among_zeros_says_nothing() -> None:
    """Finding 5: a `*` among zeros showed that a CSE case exists in RG4."""
    table = {"RG1": {"cse": 0, "weapon": 40}, "RG4": {"cse": 1, "weapon": 0}}
    live = suppress(table, 10)  # zeros published: the lone * in RG4 is at least 1
    assert live.cell("RG4", "weapon") == 0 and live.cell("RG4", "cse") is None
    assert attack([Published.of("2026-W11", live.to_dict())], {"2026-W11": table})
    frozen = snapshot(table, ["cse", "weapon"], SnapshotPolicy())
    assert frozen.cell("RG4", "weapon") is None and frozen.cell("RG4", "cse") is None
    assert attack([Published.of("2026-W11", frozen.to_dict())], {"2026-W11": table}) == []


def test_totals_cannot_prove_a_small_cell_is_there() -> None:
    """Protection to zero: these margins proved (0, f1) >= 4 before the interval audit."""
    table = {"a0": {"f0": 60, "f1": 8, "f2": 60}, "a1": {"f0": 0, "f1": 15, "f2": 3}}
    published = snapshot(table, ["f0", "f1", "f2"], SnapshotPolicy())
    assert attack([Published.of("2026-W11", published.to_dict())], {"2026-W11": table}) == []


_counts = st.sampled_from([0, 0, 0, 1, 2, 3, 4, 6, 9, 10, 11, 14, 25, 60])


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 5).flatmap(
        lambda rows: st.integers(1, 5).flatmap(
            lambda cols: st.lists(
                st.lists(_counts, min_size=cols, max_size=cols), min_size=rows, max_size=rows
            )
        )
    )
)
def test_an_attacker_learns_nothing_below_the_threshold_from_any_snapshot(grid: list[list[int]]) -> None:
    table = {f"a{i}": {f"f{j}": v for j, v in enumerate(row)} for i, row in enumerate(grid)}
    published = snapshot(table, [f"f{j}" for j in range(len(grid[0]))], SnapshotPolicy())
    check_published(published)
    assert attack([Published.of("2026-W11", published.to_dict())], {"2026-W11": table}) == []


def test_suppressed_zeros_alone_need_no_complement() -> None:
    """Working a hidden zero out says nobody is there: it must not cost the published counts."""
    cols = ["school_exclusion", "weapon_carrying", "gang_association"]
    exact = snapshot({"RG1": {"school_exclusion": 3}}, cols, SnapshotPolicy(threshold=1, round_to=0))
    assert exact.cells == ((3, None, None),) and exact.total == 3 and exact.col_totals == (3, None, None)
    table = {"RG1": {"school_exclusion": 40}, "RG2": {"school_exclusion": 25, "weapon_carrying": 3}}
    published = snapshot(table, cols, SnapshotPolicy())
    assert published.cell("RG1", "school_exclusion") == 40  # its zeros are hidden, it stays shown
    assert attack([Published.of("2026-W11", published.to_dict())], {"2026-W11": table}) == []
