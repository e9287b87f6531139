"""Area counts: distinct PEOPLE per (area, week, factor), idempotent, frozen weeks left alone."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.views.area_counts import UNKNOWN_AREA, AreaCounts, cells_of, iso_week


def _fact(
    event_id: str,
    factors: list[str],
    district: str | None = "RG1",
    subject_index: int = 0,
    when: str = "2026-03-12T10:00:00+00:00",
    person: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "person_token": person,
        "subject_index": subject_index,
        "occurred_at": when,
        "factors": factors,
        "area": {"lsoa": "E01016001", "district": district},
    }


def test_iso_week() -> None:
    assert iso_week("2026-03-12T10:00:00+00:00") == "2026-W11"
    assert iso_week("2025-12-31T12:00:00+00:00") == "2026-W01"  # ISO years start on a Monday
    assert iso_week("2025-12-29T00:30:00+01:00") == "2025-W52"  # Sunday 23:30 in UTC


def test_cells_of_fact() -> None:
    assert cells_of(_fact("e1", ["b", "a", "a"])) == [("RG1", "2026-W11", "a"), ("RG1", "2026-W11", "b")]
    assert cells_of(_fact("e1", ["a"]), level="lsoa") == [("E01016001", "2026-W11", "a")]
    assert cells_of(_fact("e1", [])) == []
    assert cells_of(_fact("e1", ["a"], district=None))[0][0] == UNKNOWN_AREA


def test_distinct_people_and_idempotent() -> None:
    counts = AreaCounts()
    assert counts.apply(_fact("e1", ["weapon_carrying"], subject_index=0))
    assert counts.apply(_fact("e1", ["weapon_carrying"], subject_index=1))  # same event, second person
    assert not counts.apply(_fact("e1", ["weapon_carrying"], subject_index=0))  # replay
    assert counts.apply(_fact("e1", ["school_exclusion"], subject_index=1))
    counts.apply(_fact("e2", ["weapon_carrying"], district="OX4"))
    assert counts.table("2026-W11") == {
        "RG1": {"weapon_carrying": 2, "school_exclusion": 1},
        "OX4": {"weapon_carrying": 1},
    }


def test_one_person_with_many_events_counts_once() -> None:
    """Finding 5: one person with 10 events was published as 10."""
    counts = AreaCounts.of(_fact(f"e{i}", ["cse"], person="p.alice") for i in range(12))
    assert counts.table("2026-W11") == {"RG1": {"cse": 1}}
    counts.apply(_fact("x", ["cse"], person="p.bob"))
    assert counts.table("2026-W11") == {"RG1": {"cse": 2}}
    assert counts.retract("e3")  # erasing one of alice's events: she is still there by the others
    assert counts.table("2026-W11") == {"RG1": {"cse": 2}}
    for i in range(12):
        counts.retract(f"e{i}")
    assert counts.table("2026-W11") == {"RG1": {"cse": 1}}


def test_a_fact_of_a_frozen_week_counts_in_the_next_open_week_once() -> None:
    counts = AreaCounts()
    late = _fact("late", ["cse"], person="p.carol")  # 2026-W11
    frozen = {"2026-W11", "2026-W12"}
    assert counts.place(late, frozen) == [("RG1", "2026-W13", "cse")]
    assert counts.place(late, frozen) == []  # replay
    assert counts.place(late, {*frozen, "2026-W13"}) == []  # replayed after W13 froze: still once
    assert counts.weeks() == ["2026-W13"]
    assert counts.place(_fact("on-time", ["cse"]), set()) == [("RG1", "2026-W11", "cse")]
    year_end = _fact("ye", ["cse"], when="2026-12-30T10:00:00Z")  # 2026-W53
    assert counts.place(year_end, {"2026-W53"}) == [("RG1", "2027-W01", "cse")]


def test_retract_and_prune() -> None:
    counts = AreaCounts.of(
        [_fact("e1", ["a"]), _fact("e2", ["a"]), _fact("e3", ["a"], when="2026-01-05T00:00:00Z")]
    )
    assert counts.weeks() == ["2026-W02", "2026-W11"]
    assert counts.retract("e1")
    assert not counts.retract("e1")
    assert counts.table("2026-W11") == {"RG1": {"a": 1}}
    counts.retract("e2")
    assert counts.weeks() == ["2026-W02"]
    assert counts.prune("2026-W03") == 1 and counts.weeks() == []


def test_published_suppresses_small_counts() -> None:
    facts = [_fact(f"r{i}", ["weapon_carrying"]) for i in range(25)]
    facts += [_fact(f"o{i}", ["weapon_carrying"], district="OX4") for i in range(12)]
    facts += [_fact("x1", ["school_exclusion"], district="OX4")]
    pub = AreaCounts.of(facts).published(
        "2026-W11", threshold=10, factors=["weapon_carrying", "school_exclusion"]
    )
    assert pub.cols == ("weapon_carrying", "school_exclusion")
    assert pub.cell("OX4", "school_exclusion") is None
    assert pub.cell("RG1", "school_exclusion") == 0
    assert pub.cell("OX4", "weapon_carrying") is None  # complement: otherwise the row total gives it away
    assert pub.cell("RG1", "weapon_carrying") == 25
    assert pub.col_totals == (None, None) and pub.row_totals == (13, 25)


def test_trends_come_from_published_totals() -> None:
    facts = [_fact(f"a{i}", ["weapon_carrying"]) for i in range(12)]
    facts += [_fact(f"b{i}", ["weapon_carrying"], when="2026-03-19T10:00:00Z") for i in range(3)]
    facts += [_fact("c", ["school_exclusion"], when="2026-03-19T10:00:00Z")]
    trends = AreaCounts.of(facts).trends(threshold=10)
    assert trends["weapon_carrying"] == [("2026-W11", 12), ("2026-W12", None)]
    assert trends["school_exclusion"] == [("2026-W11", 0), ("2026-W12", None)]


def test_round_trips_as_json() -> None:
    counts = AreaCounts.of([_fact("e1", ["a", "b"]), _fact("e2", ["a"], district="OX4")], level="district")
    back = AreaCounts.from_dict(json.loads(json.dumps(counts.to_dict())))
    assert back.table("2026-W11") == counts.table("2026-W11")
    assert not back.apply(_fact("e1", ["a"]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 15), st.integers(0, 2), st.sampled_from(["RG1", "OX4", None])),
        max_size=40,
    ),
    st.randoms(use_true_random=False),
)
def test_order_and_duplicates_do_not_matter(raw: list[tuple[int, int, str | None]], rnd: Any) -> None:
    facts = [
        _fact(f"e{e}", ["f" + str(e % 3)], district=d if s == 0 else "RG1", subject_index=s)
        for e, s, d in raw
    ]
    # one event has one place; keep the first area seen for each event so facts are consistent
    first: dict[str, str | None] = {}
    for f in facts:
        first.setdefault(f["event_id"], f["area"]["district"])
        f["area"] = {"lsoa": None, "district": first[f["event_id"]]}
    once = AreaCounts.of(facts)
    replay = facts * 2
    rnd.shuffle(replay)
    assert AreaCounts.of(replay).table("2026-W11") == once.table("2026-W11")
    expected: dict[str, dict[str, int]] = {}
    for event_id, _index in sorted({(f["event_id"], f["subject_index"]) for f in facts}):
        cell = expected.setdefault(first[event_id] or UNKNOWN_AREA, {})
        factor = "f" + str(int(event_id[1:]) % 3)
        cell[factor] = cell.get(factor, 0) + 1  # each unlinked subject of an event is one person
    assert once.table("2026-W11") == expected
