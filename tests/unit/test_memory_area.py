"""Area counts keep 16 bytes an (event, person) pair in memory and 32 in table rows, and stay exact."""

from __future__ import annotations

import sys
import tracemalloc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.views.area_counts import AreaCounts, person_key
from streams.views.area_stage import TableAreaCounts
from streams.views.profiles import event_key


def _fact(n: int, factors: list[str], district: str = "RG1", week: int = 11) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "subject_index": 0,
        "occurred_at": f"2026-03-{week + 1:02d}T10:00:00+00:00",
        "factors": factors,
        "area": {"lsoa": None, "district": district},
    }


def test_a_cell_costs_about_sixteen_bytes_an_event() -> None:
    counts = AreaCounts()
    for n in range(10_000):
        counts.apply(_fact(n, ["weapon_carrying"]))
    (cell,) = counts._weeks["2026-W11"]["RG1"].values()
    assert len(cell) == 10_000
    size = sys.getsizeof(cell.events) + sys.getsizeof(cell.persons)
    assert size < 10_000 * 18  # a set of (event, person) tuples: over 100 bytes an entry
    tracemalloc.start()
    try:
        more = AreaCounts()
        for n in range(10_000):
            more.apply(_fact(n, ["weapon_carrying"]))
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size < 10_000 * 24


def test_table_rows_are_compact_and_rows_written_before_still_load() -> None:
    counts = TableAreaCounts()
    for n in range(5):
        counts.apply(_fact(n, ["weapon_carrying", "school_exclusion"]))
    row = counts.row("RG1", "2026-W11")
    assert row is not None and set(row) == {"school_exclusion", "weapon_carrying"}
    pairs = sorted((event_key(f"e{n}"), person_key(_fact(n, []))) for n in range(5))
    assert row["weapon_carrying"] == "p" + "".join(f"{e:016x}{p:016x}" for e, p in pairs)
    rebuilt = TableAreaCounts()
    rebuilt.reload([(("RG1", "2026-W11"), row)])
    assert rebuilt.to_dict() == counts.to_dict()
    # Rows of event keys alone (a string, or a list of hex keys) load with each event as one person.
    events = "".join(sorted(f"{event_key(f'e{n}'):016x}" for n in range(5)))
    for value in (
        {"weapon_carrying": events},
        {"weapon_carrying": [events[i : i + 16] for i in range(0, 80, 16)]},
    ):
        rebuilt = TableAreaCounts()
        rebuilt.reload([(("RG1", "2026-W11"), value)])
        assert rebuilt.table("2026-W11") == {"RG1": {"weapon_carrying": 5}}
        assert rebuilt.rows_of("e3") == {("RG1", "2026-W11")} and rebuilt.rows_of("e9") == set()
    assert not counts.apply(_fact(2, ["weapon_carrying"]))  # still idempotent


_ops = st.lists(
    st.tuples(
        st.booleans(), st.integers(0, 25), st.sampled_from(["a", "b"]), st.sampled_from(["RG1", "OX4"])
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(_ops)
def test_the_same_counts_as_sets_of_event_ids(ops: list[tuple[bool, int, str, str]]) -> None:
    counts = TableAreaCounts()
    model: dict[tuple[str, str], set[int]] = {}
    for add, n, factor, district in ops:
        if add:
            fresh = n not in model.get((district, factor), set())
            assert counts.apply(_fact(n, [factor], district)) == fresh
            model.setdefault((district, factor), set()).add(n)
        else:
            present = any(n in events for events in model.values())
            assert counts.retract(f"e{n}") == present
            for events in model.values():
                events.discard(n)
    expected: dict[str, dict[str, int]] = {}
    for (district, factor), events in model.items():
        if events:
            expected.setdefault(district, {})[factor] = len(events)
    assert counts.table("2026-W11") == expected
    rebuilt = TableAreaCounts()
    rebuilt.reload(((area, week), counts.row(area, week)) for area, week in list(counts.rows()))
    assert rebuilt.to_dict() == counts.to_dict()
    assert AreaCounts.from_dict(counts.to_dict()).to_dict() == counts.to_dict()
