"""Person profiles: idempotent under replays and merges, exact under retraction, explainable scores."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.views.profiles import Profile, apply_fact, merge, rescore, retract, score

NOW = datetime(2026, 3, 15, tzinfo=UTC)
WEIGHTS = {"weapon_carrying": 3.0, "school_exclusion": 2.0, "programme_engagement": -1.5}


def _fact(
    event_id: str, factors: list[str], days_ago: float = 0, subject_index: int = 0, partner: str = "p1"
) -> dict[str, Any]:
    return {
        "kind": "fact",
        "person_token": "p.a",
        "event_id": event_id,
        "subject_index": subject_index,
        "event_type": "education.exclusion",
        "source_partner": partner,
        "occurred_at": (NOW - timedelta(days=days_ago)).isoformat(),
        "role": None,
        "factors": factors,
        "area": {"lsoa": None, "district": "RG1"},
    }


def _state(p: Profile) -> tuple[Any, ...]:
    return (sorted(p.contributions.items()), sorted((k, v.to_dict()) for k, v in p.factors.items()))


def test_replay_does_not_double_count() -> None:
    p = Profile("p.a")
    assert apply_fact(p, _fact("e1", ["weapon_carrying", "school_exclusion"], 10))
    assert not apply_fact(p, _fact("e1", ["weapon_carrying", "school_exclusion"], 10))
    assert p.factors["weapon_carrying"].count == 1
    assert not apply_fact(p, _fact("e2", []))


def test_counts_are_of_distinct_events() -> None:
    p = Profile("p.a")
    apply_fact(p, _fact("e1", ["weapon_carrying"], 5, subject_index=0))
    apply_fact(p, _fact("e1", ["weapon_carrying"], 5, subject_index=1))
    apply_fact(p, _fact("e2", ["weapon_carrying"], 1, partner="p2"))
    stats = p.factors["weapon_carrying"]
    assert stats.count == 2
    assert stats.partners == ["p1", "p2"]
    assert stats.first_seen == NOW - timedelta(days=5)
    assert stats.last_seen == NOW - timedelta(days=1)


def test_merge_is_idempotent_and_order_free() -> None:
    a, b = Profile("p.a"), Profile("p.b")
    apply_fact(a, _fact("e1", ["weapon_carrying"], 3))
    apply_fact(b, _fact("e2", ["weapon_carrying"], 2))
    apply_fact(b, _fact("e1", ["weapon_carrying"], 3))
    assert merge(a, b)
    assert not merge(a, b)
    assert a.factors["weapon_carrying"].count == 2
    c = Profile("p.a")
    merge(c, b)
    apply_fact(c, _fact("e1", ["weapon_carrying"], 3))
    assert _state(c) == _state(a)


def test_retract_is_exact() -> None:
    p, q = Profile("p.a"), Profile("p.a")
    for f in (_fact("e1", ["weapon_carrying"], 30), _fact("e3", ["school_exclusion"], 3)):
        apply_fact(p, f)
        apply_fact(q, f)
    apply_fact(p, _fact("e2", ["weapon_carrying", "school_exclusion"], 1, subject_index=0))
    apply_fact(p, _fact("e2", ["weapon_carrying"], 1, subject_index=2))
    assert retract(p, "e2")
    assert not retract(p, "e2")
    assert _state(p) == _state(q)
    retract(p, "e1")
    assert "weapon_carrying" not in p.factors


def test_score_decays_with_half_life_and_explains() -> None:
    p = Profile("p.a")
    apply_fact(p, _fact("e1", ["weapon_carrying"], 180))
    apply_fact(p, _fact("e2", ["weapon_carrying"], 0))
    apply_fact(p, _fact("e3", ["programme_engagement"], 0))
    value, why = score(p, NOW, WEIGHTS)
    assert value == 3.0 * 1.5 - 1.5
    assert why == [
        f"weapon_carrying x2, last {NOW.date()}, weight 3.0 -> 4.5",
        f"programme_engagement x1, last {NOW.date()}, weight -1.5 -> -1.5",
    ]


def test_protective_factors_cannot_push_below_zero() -> None:
    p = Profile("p.a")
    apply_fact(p, _fact("e1", ["programme_engagement"]))
    apply_fact(p, _fact("e2", ["unknown_factor"]))
    assert rescore(p, NOW, WEIGHTS) == 0.0
    assert p.scored_at == NOW
    assert any(line.startswith("unknown_factor x1") and "weight 0.0" in line for line in p.explanation)


def test_round_trips_as_json() -> None:
    p = Profile("p.a")
    apply_fact(p, _fact("e1", ["weapon_carrying", "school_exclusion"], 7))
    rescore(p, NOW, WEIGHTS)
    d = json.loads(json.dumps(p.to_dict()))
    back = Profile.from_dict(d)
    assert _state(back) == _state(p)
    assert (back.score, back.explanation, back.scored_at) == (p.score, p.explanation, p.scored_at)
    summary = p.summary()
    assert set(summary) == {"person_token", "score", "explanation", "scored_at", "truncated_at", "factors"}
    assert "e1" not in json.dumps(summary)


_facts = st.dictionaries(
    st.tuples(st.integers(0, 8), st.integers(0, 2)),
    st.lists(st.sampled_from(sorted(WEIGHTS)), min_size=1, max_size=3, unique=True),
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(_facts, st.integers(0, 8), st.randoms(use_true_random=False))
def test_any_order_with_duplicates_and_retraction_gives_the_same_profile(
    raw: dict[tuple[int, int], list[str]], gone: int, rnd: random.Random
) -> None:
    facts = [_fact(f"e{e}", fs, days_ago=e, subject_index=s) for (e, s), fs in raw.items()]
    ordered = Profile("p.a")
    for f in facts:
        apply_fact(ordered, f)
    replay = facts + facts[: len(facts) // 2]
    rnd.shuffle(replay)
    half = len(replay) // 2
    left, right, merged = Profile("p.a"), Profile("p.b"), Profile("p.a")
    for f in replay[:half]:
        apply_fact(left, f)
    for f in replay[half:]:
        apply_fact(right, f)
    merge(merged, left)
    merge(merged, right)
    merge(merged, left)
    assert _state(merged) == _state(ordered)
    without = Profile("p.a")
    for f in facts:
        if f["event_id"] != f"e{gone}":
            apply_fact(without, f)
    retract(ordered, f"e{gone}")
    assert _state(ordered) == _state(without)
