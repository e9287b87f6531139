"""A person profile stays bounded however many events arrive for that person, and stays exact.

The cap keeps the newest `cap` contributions (by occurred_at, then event key and subject) and
remembers the highest rank it forgot (the horizon), so replays, late facts, duplicates and merges
in any order give the same profile, and nothing forgotten or erased can come back.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.deadletter import RawRecord
from streams.views.profile_stage import ProfileResult, ProfileStage
from streams.views.profiles import MAX_CONTRIBUTIONS, Profile, apply_fact, event_key, merge, retract
from streams.views.state import MemoryStore, ViewsTopics

NOW = datetime(2026, 3, 15, tzinfo=UTC)
NAMES = ViewsTopics()
WEIGHTS = {"weapon_carrying": 3.0, "school_exclusion": 2.0}


def _fact(
    n: int, *, token: str = "p.a", subject: int = 0, partner: str = "reading_schools"
) -> dict[str, Any]:
    """Event n occurred n hours after the epoch below: a higher n is a newer event."""
    return {
        "kind": "fact",
        "person_token": token,
        "event_id": f"e{n}",
        "subject_index": subject,
        "source_partner": partner,
        "occurred_at": (NOW - timedelta(days=400) + timedelta(hours=n)).isoformat(),
        "factors": ["weapon_carrying"] if n % 2 else ["school_exclusion", "weapon_carrying"],
        "area": {"district": "RG1", "lsoa": None},
    }


def _keys(p: Profile) -> set[tuple[int, int]]:
    return set(p.contributions)


def _newest(ns: list[int], cap: int) -> set[tuple[int, int]]:
    return {(event_key(f"e{n}"), 0) for n in sorted(set(ns))[-cap:]}


def _state(p: Profile) -> tuple[Any, ...]:
    return (
        sorted(p.contributions.items()),
        p.horizon,
        sorted((k, v.to_dict()) for k, v in p.factors.items()),
    )


def test_a_profile_keeps_only_the_newest_contributions() -> None:
    p = Profile("p.a")
    ns = list(range(30))
    random.Random(3).shuffle(ns)
    for n in ns:
        apply_fact(p, _fact(n), cap=8)
    assert len(p.contributions) == 8
    assert _keys(p) == _newest(ns, 8)
    assert p.horizon is not None and p.horizon[0] == int((NOW - timedelta(days=400, hours=-21)).timestamp())
    assert p.factors["weapon_carrying"].count == 8  # counts are of what the profile keeps
    assert p.factors["weapon_carrying"].first_seen == NOW - timedelta(days=400) + timedelta(hours=22)


def test_the_default_cap_holds() -> None:
    p = Profile("p.a")
    for n in range(MAX_CONTRIBUTIONS + 50):
        apply_fact(p, _fact(n))
    assert len(p.contributions) == MAX_CONTRIBUTIONS
    assert _keys(p) == _newest(list(range(MAX_CONTRIBUTIONS + 50)), MAX_CONTRIBUTIONS)


def test_a_replayed_forgotten_event_does_not_come_back() -> None:
    p = Profile("p.a")
    for n in range(10):
        assert apply_fact(p, _fact(n), cap=4)
    before = _state(p)
    for n in range(10):  # at-least-once: everything again, forgotten and kept alike
        assert not apply_fact(p, _fact(n), cap=4)
    assert _state(p) == before
    assert not apply_fact(p, _fact(-5), cap=4)  # older than everything kept: it would be forgotten at once
    assert _state(p) == before
    assert apply_fact(p, _fact(100), cap=4)  # a new, newer event pushes the oldest kept one out
    assert _keys(p) == _newest([7, 8, 9, 100], 4)


def test_a_full_profile_given_an_older_event_only_raises_its_horizon() -> None:
    p = Profile("p.a")
    for n in (10, 11, 12):
        apply_fact(p, _fact(n), cap=3)
    assert p.horizon is None
    assert apply_fact(p, _fact(5), cap=3)  # changed: the horizon now says e5 was seen and forgotten
    assert _keys(p) == _newest([10, 11, 12], 3) and p.horizon is not None
    assert not apply_fact(p, _fact(5), cap=3)


def test_the_stored_value_stops_growing_at_the_cap() -> None:
    p = Profile("p.a")
    sizes = []
    for n in range(60):
        apply_fact(p, _fact(n), cap=20)
        sizes.append(len(json.dumps(p.to_dict())))
    assert sizes[19] > sizes[9] > sizes[0]  # under the cap every event adds one contribution
    assert max(sizes[20:]) - min(sizes[20:]) < 40  # at the cap only the horizon's digits can change
    assert max(sizes[20:]) < 20 * 120  # ~80 bytes a contribution, plus the person token and horizon


def test_a_stored_profile_costs_under_150_bytes_a_contribution_in_memory() -> None:
    p = Profile("p.a")
    for n in range(200):
        apply_fact(p, _fact(n, partner=f"partner_{n % 3}"), cap=200)
    text = json.dumps(p.to_dict())
    tracemalloc.start()
    try:
        stored = json.loads(text)  # what the table holds once recovered from its changelog
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Profile.from_dict(stored).contributions == p.contributions
    assert size < 200 * 150  # a JSON list of lists per contribution took ~490 bytes


def test_erasure_stays_exact_and_erasing_a_forgotten_event_is_a_no_op() -> None:
    p = Profile("p.a")
    for n in range(10):
        apply_fact(p, _fact(n), cap=4)
    assert not retract(p, "e2")  # forgotten already: nothing of it is left to erase
    assert retract(p, "e8")
    assert _keys(p) == _newest([6, 7, 9], 4)
    assert not apply_fact(p, _fact(3), cap=4)  # room again, but e3 was forgotten: it stays forgotten


def test_merge_keeps_the_newest_of_both_and_forgets_what_either_forgot() -> None:
    a, b = Profile("p.a"), Profile("p.b")
    for n in range(0, 20, 2):
        apply_fact(a, _fact(n), cap=4)
    for n in range(1, 8, 2):
        apply_fact(b, _fact(n), cap=4)
    assert merge(b, a, cap=4)
    assert _keys(b) == _newest([12, 14, 16, 18], 4)
    assert not merge(b, a, cap=4)  # idempotent
    c = Profile("p.b")
    merge(c, b, cap=4)
    merge(c, a, cap=4)
    for n in [*range(0, 20, 2), 1, 3, 5, 7]:  # everything either side was given, again
        assert not apply_fact(c, _fact(n), cap=4)
    assert _state(c) == _state(b)


def test_round_trip_and_the_earlier_list_form() -> None:
    p = Profile("p.a")
    for n in range(6):
        apply_fact(p, _fact(n, partner="odd partner;1,%") if n == 2 else _fact(n), cap=4)
    d = json.loads(json.dumps(p.to_dict()))
    assert isinstance(d["contributions"], str)
    back = Profile.from_dict(d)
    assert _state(back) == _state(p)
    legacy = dict(d, contributions=[c.to_list() for c in p.contributions.values()])
    del legacy["horizon"]  # written before the cap existed
    old = Profile.from_dict(legacy)
    assert sorted(old.contributions.items()) == sorted(p.contributions.items()) and old.horizon is None
    partners = {c.partner for c in back.contributions.values()}
    assert "odd partner;1,%" in partners


_events = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 1)), max_size=40)


@settings(max_examples=120, deadline=None)
@given(_events, st.integers(1, 6), st.randoms(use_true_random=False))
def test_any_order_duplicates_and_merges_keep_exactly_the_newest(
    events: list[tuple[int, int]], cap: int, rnd: random.Random
) -> None:
    facts = [_fact(n, subject=s) for n, s in events]
    distinct = {(event_key(f["event_id"]), f["subject_index"]): f for f in facts}
    ranked = sorted(
        distinct,
        key=lambda k: (int(datetime.fromisoformat(distinct[k]["occurred_at"]).timestamp()), k[0], k[1]),
    )
    expected = set(ranked[-cap:])
    ordered = Profile("p.a")
    for f in facts:
        apply_fact(ordered, f, cap)
    assert _keys(ordered) == expected
    replay = facts + facts[: len(facts) // 2]
    rnd.shuffle(replay)
    cut = rnd.randint(0, len(replay))
    left, right, merged = Profile("p.a"), Profile("p.b"), Profile("p.a")
    for f in replay[:cut]:
        apply_fact(left, f, cap)
    for f in replay[cut:]:
        apply_fact(right, f, cap)
    merge(merged, left, cap)
    merge(merged, right, cap)
    assert not merge(merged, left, cap)
    assert _keys(merged) == expected
    for f in replay:
        assert not apply_fact(merged, f, cap)
    assert _keys(merged) == expected


# --- the views stage: what the worker's table holds ---------------------------------------------


class Stage(ProfileStage):
    def process(self, records: Any) -> ProfileResult:
        result = super().process(records)
        self.commit(result)
        return result


def _rec(doc: dict[str, Any], key: str, topic: str = NAMES.link_person) -> RawRecord:
    return RawRecord(topic, 0, 0, key.encode(), json.dumps(doc).encode())


def test_the_views_table_holds_a_bounded_profile_under_replays_and_merges() -> None:
    profiles, tombs = MemoryStore(), MemoryStore()
    stage = Stage(profiles, tombs, WEIGHTS, NAMES, clock=lambda: NOW, max_contributions=5)
    batches = [[_rec(_fact(n), "p.a") for n in range(i, i + 7)] for i in range(0, 70, 7)]
    for batch in batches:
        stage.process(batch)
    stored = Profile.from_dict(profiles.data["p.a"])
    assert _keys(stored) == _newest(list(range(70)), 5)
    value = json.dumps(profiles.data["p.a"])
    for batch in batches:  # the whole topic replayed (a consumer group reset)
        assert stage.process(batch).changed == {}
    assert json.dumps(profiles.data["p.a"]) == value
    for n in range(100, 106):
        stage.process([_rec(_fact(n, token="p.b"), "p.b")])
    merged = stage.process([_rec({"kind": "merge", "from": "p.b", "into": "p.a"}, "p.b")])
    (move,) = [o for o in merged.outputs if o.topic == NAMES.moves]
    stage.process([RawRecord(NAMES.moves, 0, 0, move.key, move.value)])
    assert _keys(Profile.from_dict(profiles.data["p.a"])) == _newest(list(range(101, 106)), 5)
    assert stage.process([RawRecord(NAMES.moves, 0, 0, move.key, move.value)]).changed == {}


def test_a_truncated_profile_says_so_and_from_when() -> None:
    p = Profile("p.a")
    for n in range(4):
        apply_fact(p, _fact(n), cap=4)
    assert p.truncated_at is None and p.summary()["truncated_at"] is None  # every event counted
    apply_fact(p, _fact(4), cap=4)  # the fifth forgets e0
    forgot = NOW - timedelta(days=400)  # when e0 occurred
    assert p.truncated_at == forgot
    assert p.summary()["truncated_at"] == forgot.isoformat()
    assert Profile.from_dict(json.loads(json.dumps(p.to_dict()))).truncated_at == forgot  # survives storage


def test_the_published_profile_record_carries_truncated_at() -> None:
    import io

    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    from streams import topics
    from streams.views.avro import _load, profile_record

    parsed = parse_schema(_load(topics.VIEWS_PERSON_PROFILE))
    p = Profile("p.a")
    for n in range(6):
        apply_fact(p, _fact(n), cap=4)

    buf = io.BytesIO()
    schemaless_writer(buf, parsed, profile_record(p))
    decoded: Any = schemaless_reader(io.BytesIO(buf.getvalue()), parsed, None)
    assert decoded["truncated_at"] == NOW - timedelta(days=400, hours=-1)  # e1, the newest forgotten
