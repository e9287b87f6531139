"""The views agent's batch logic without Faust: idempotency, merges via moves, erasure, dead letters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from streams.avro.catalogue import load_catalogue
from streams.deadletter import Output, RawRecord, header
from streams.views.area_counts import AreaCounts
from streams.views.area_stage import AreaStage, TableAreaCounts, publish_week, row_key
from streams.views.avro import SCHEMA_DIR
from streams.views.profile_stage import ProfileResult, ProfileStage
from streams.views.profiles import Profile
from streams.views.state import MemoryStore, ViewsTopics

NAMES = ViewsTopics()
NOW = datetime(2026, 3, 20, tzinfo=UTC)
WEIGHTS = {"weapon_carrying": 3.0, "school_exclusion": 2.0, "positive_activity": 1.0}


def fact(
    event_id: str, token: str | None, factors: list[str], index: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "fact",
        "event_id": event_id,
        "subject_index": index,
        "person_token": token,
        "source_partner": extra.pop("partner", "reading_schools"),
        "occurred_at": extra.pop("at", "2026-03-10T10:00:00+00:00"),
        "factors": factors,
        "area": {"district": extra.pop("district", "RG1"), "lsoa": None},
        **extra,
    }


def rec(doc: Any, key: str | None, topic: str = NAMES.link_person, partition: int = 0) -> RawRecord:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return RawRecord(topic, partition, 0, key.encode() if key else None, value)


class Stage(ProfileStage):
    """process + commit, as the agent runs them once the outputs are delivered."""

    def process(self, records: Sequence[RawRecord]) -> ProfileResult:
        result = super().process(records)
        self.commit(result)
        return result


def stage() -> tuple[ProfileStage, MemoryStore, MemoryStore]:
    profiles, tombs = MemoryStore(), MemoryStore()
    return Stage(profiles, tombs, WEIGHTS, NAMES, clock=lambda: NOW), profiles, tombs


def on(topic: str, outputs: list[Output]) -> list[dict[str, Any]]:
    return [json.loads(o.value or b"null") for o in outputs if o.topic == topic]


def counts(store: MemoryStore, token: str) -> dict[str, int]:
    return {f: s.count for f, s in Profile.from_dict(store.data[token]).factors.items()}


def test_duplicates_and_replays_never_double_count() -> None:
    s, profiles, _ = stage()
    batch = [
        rec(fact("e1", "p.a", ["weapon_carrying"]), "p.a"),
        rec(fact("e1", "p.a", ["weapon_carrying"]), "p.a"),  # duplicate in the same batch
        rec(fact("e2", "p.a", ["weapon_carrying", "school_exclusion"]), "p.a"),
        rec(fact("e3", None, ["weapon_carrying"]), "e3"),  # no person: area counts only
    ]
    result = s.process(batch)
    assert counts(profiles, "p.a") == {"weapon_carrying": 2, "school_exclusion": 1}
    assert set(profiles.data) == {"p.a"} and result.changed == {"p.a": 0}
    assert [d["event_id"] for d in on(NAMES.area_facts, result.outputs)] == ["e1", "e1", "e2", "e3"]
    assert Profile.from_dict(profiles.data["p.a"]).score > 0
    again = s.process(batch)  # a replay after a crash
    assert again.changed == {} and counts(profiles, "p.a") == {"weapon_carrying": 2, "school_exclusion": 1}


def test_merge_moves_the_profile_to_the_new_tokens_partition_idempotently() -> None:
    s, profiles, tombs = stage()
    s.process([rec(fact("e1", "p.old", ["weapon_carrying"], partner="tvp"), "p.old", partition=1)])
    s.process([rec(fact("e2", "p.new", ["school_exclusion"]), "p.new", partition=2)])
    merge_record = rec({"kind": "merge", "from": "p.old", "into": "p.new"}, "p.old", partition=1)
    unsent = ProfileStage.process(s, [merge_record])  # worked out, but the move was never delivered
    assert "p.old" in profiles.data  # so nothing changed: a retry (or a replay) sends the move again
    merged = s.process([merge_record])
    assert [o.value for o in merged.outputs] == [o.value for o in unsent.outputs]
    assert "p.old" not in profiles.data and profiles.partitions["p.old"] == 1
    assert tombs.data["p.old"]["moved_to"] == "p.new"
    moves = [o for o in merged.outputs if o.topic == NAMES.moves]
    assert [o.key for o in moves] == [b"p.new"]
    move = RawRecord(NAMES.moves, 2, 0, moves[0].key, moves[0].value)
    s.process([move])
    assert counts(profiles, "p.new") == {"weapon_carrying": 1, "school_exclusion": 1}
    assert Profile.from_dict(profiles.data["p.new"]).factors["weapon_carrying"].partners == ["tvp"]
    assert profiles.partitions["p.new"] == 2
    assert s.process([move]).changed == {}  # a duplicated move changes nothing
    late = s.process([rec(fact("e3", "p.old", ["gang_association"]), "p.old", partition=1)])
    assert "p.old" not in profiles.data  # a late (or replayed) fact of a merged token follows the merge
    onward = [o for o in late.outputs if o.topic == NAMES.moves]
    s.process([RawRecord(NAMES.moves, 2, 0, onward[0].key, onward[0].value)])
    assert counts(profiles, "p.new") == {"weapon_carrying": 1, "school_exclusion": 1, "gang_association": 1}


def test_a_profile_belongs_to_its_views_recipient_through_merges_and_moves() -> None:
    s, profiles, _ = stage()
    s.process([rec(fact("e1", "k1.old", ["weapon_carrying"], recipient="vru"), "k1.old", partition=1)])
    assert Profile.from_dict(profiles.data["k1.old"]).recipient == "vru"
    merged = s.process([rec({"kind": "merge", "from": "k1.old", "into": "k1.new"}, "k1.old", partition=1)])
    move = next(o for o in merged.outputs if o.topic == NAMES.moves)
    s.process([RawRecord(NAMES.moves, 2, 0, move.key, move.value)])
    moved = Profile.from_dict(profiles.data["k1.new"])
    assert moved.recipient == "vru" and moved.visible_to("vru") and not moved.visible_to("yjs")
    assert not moved.visible_to(None)


def test_another_recipients_fact_never_joins_a_profile() -> None:
    s, profiles, _ = stage()
    s.process([rec(fact("e1", "k1.a", ["weapon_carrying"], recipient="vru"), "k1.a")])
    result = s.process([rec(fact("e2", "k1.a", ["school_exclusion"], recipient="yjs"), "k1.a")])
    assert result.dead == 1 and counts(profiles, "k1.a") == {"weapon_carrying": 1}
    assert Profile.from_dict(profiles.data["k1.a"]).recipient == "vru"
    no_view = s.process([rec(fact("e3", "k1.a", ["gang_association"]), "k1.a")])
    assert no_view.dead == 0 and [d["event_id"] for d in on(NAMES.area_facts, no_view.outputs)] == ["e3"]
    assert counts(profiles, "k1.a") == {"weapon_carrying": 1}  # counted in the areas, in no view


def test_a_profile_of_no_recipients_view_is_visible_to_nobody() -> None:
    s, profiles, _ = stage()
    s.process([rec(fact("e1", "p.a", ["weapon_carrying"]), "p.a")])
    profile = Profile.from_dict(profiles.data["p.a"])
    assert profile.recipient is None and not profile.visible_to("vru") and not profile.visible_to(None)


def test_a_merge_back_does_not_bounce_between_the_two_tokens() -> None:
    s, profiles, tombs = stage()
    s.process([rec(fact("e1", "p.a", ["weapon_carrying"]), "p.a")])
    there = s.process([rec({"kind": "merge", "from": "p.a", "into": "p.b"}, "p.a")])
    move_ab = next(o for o in there.outputs if o.topic == NAMES.moves)
    # before the move lands, the linker merges p.b back into p.a
    back = s.process([rec({"kind": "merge", "from": "p.b", "into": "p.a"}, "p.b")])
    assert not [o for o in back.outputs if o.topic == NAMES.moves]  # p.b had nothing yet
    hops = 0
    pending = [move_ab]
    while pending and hops < 5:
        out = pending.pop()
        result = s.process([RawRecord(NAMES.moves, 0, 0, out.key, out.value)])
        pending += [o for o in result.outputs if o.topic == NAMES.moves]
        hops += 1
    assert not pending and hops <= 3
    assert set(profiles.data) == {"p.a"} and counts(profiles, "p.a") == {"weapon_carrying": 1}
    assert tombs.data["p.a"]["moved_to"] is None  # alive again


def test_erasure_follows_moves_and_blocks_a_profile_in_flight() -> None:
    s, profiles, tombs = stage()
    s.process([rec(fact("e1", "p.old", ["weapon_carrying"]), "p.old")])
    s.process([rec(fact("e2", "p.old", ["school_exclusion"]), "p.old")])
    merged = s.process([rec({"kind": "merge", "from": "p.old", "into": "p.new"}, "p.old")])
    # the erasure of e1 names the new token before the move has arrived there
    erased = s.process([rec({"kind": "retract", "event_ids": ["e1"], "person_token": "p.new"}, "p.new")])
    assert on(NAMES.area_facts, erased.outputs) == [{"kind": "retract", "event_ids": ["e1"]}]
    move = next(o for o in merged.outputs if o.topic == NAMES.moves)
    s.process([RawRecord(NAMES.moves, 0, 0, move.key, move.value)])
    assert counts(profiles, "p.new") == {"school_exclusion": 1}
    # a retraction sent to the old token is forwarded to where the profile went
    onward = s.process([rec({"kind": "retract", "event_ids": ["e2"], "person_token": "p.old"}, "p.old")])
    forwarded = [o for o in onward.outputs if o.topic == NAMES.moves]
    assert [o.key for o in forwarded] == [b"p.new"]
    s.process([RawRecord(NAMES.moves, 0, 0, forwarded[0].key, forwarded[0].value)])
    assert "p.new" not in profiles.data  # nothing left: the profile is deleted
    assert len(tombs.data["p.new"]["erased"]) == 2  # both erasures are remembered for p.new
    # a replayed fact of an erased event cannot come back
    replay = s.process([rec(fact("e1", "p.new", ["weapon_carrying"]), "p.new")])
    assert replay.changed == {} and on(NAMES.area_facts, replay.outputs) == []


def test_bad_records_are_dead_lettered_with_a_reason() -> None:
    s, profiles, _ = stage()
    result = s.process(
        [
            rec(b"\xff not json", "p.a"),
            rec({"kind": "fact", "event_id": "e1"}, "p.a"),  # no occurred_at
            rec(fact("e2", "p.a", ["weapon_carrying"]), "p.other"),  # keyed by another token
            rec({"kind": "merge", "from": "p.a", "into": "p.a"}, "p.a"),
            rec({"kind": "nonsense"}, "p.a"),
            rec(fact("e3", "p.a", ["weapon_carrying"]), "p.a"),
        ]
    )
    dead = [o for o in result.outputs if o.topic == NAMES.dlq]
    reasons = [header(o.headers, "sharingbus.dlq.reason") for o in dead]
    assert reasons == ["decode_error", "validation", "validation", "validation", "validation"]
    assert dead[0].value == b"\xff not json" and result.dead == 5
    assert counts(profiles, "p.a") == {"weapon_carrying": 1}  # the good record still counted


def test_area_stage_counts_distinct_people_per_row_and_erases() -> None:
    store = MemoryStore()
    area = AreaStage(TableAreaCounts("district"), store, NAMES)
    facts = [
        fact("e1", "p.a", ["weapon_carrying"], index=0),
        fact("e1", "p.b", ["weapon_carrying"], index=1),  # same event, second person: two people
        fact("e2", None, ["weapon_carrying", "school_exclusion"], district="RG2"),
        fact("e3", "p.c", ["school_exclusion"], at="2026-03-17T09:00:00+00:00"),
    ]
    batch = [rec(f, f["event_id"], NAMES.area_facts) for f in facts]
    result = area.process(batch)
    assert store.data == {}  # nothing reaches the table before commit
    assert area.process(batch).weeks == result.weeks  # a retried batch still writes its rows
    area.commit(result)
    assert result.weeks == {"2026-W11", "2026-W12"}
    expected = AreaCounts.of(facts)
    assert (
        area.counts.table("2026-W11")
        == expected.table("2026-W11")
        == {
            "RG1": {"weapon_carrying": 2},
            "RG2": {"weapon_carrying": 1, "school_exclusion": 1},
        }
    )
    assert set(store.data) == {
        row_key("RG1", "2026-W11"),
        row_key("RG2", "2026-W11"),
        row_key("RG1", "2026-W12"),
    }
    rebuilt = TableAreaCounts("district")
    rebuilt.reload((tuple(k.split("|")), v) for k, v in store.data.items())  # type: ignore[misc]
    assert rebuilt.to_dict() == area.counts.to_dict()
    area.commit(area.process([rec({"kind": "retract", "event_ids": ["e2"]}, "e2", NAMES.area_facts)]))
    assert row_key("RG2", "2026-W11") not in store.data and area.counts.table("2026-W11") == {
        "RG1": {"weapon_carrying": 2}
    }
    published = publish_week({"RG1": {"weapon_carrying": 1}}, ["school_exclusion"], 10, 0)
    assert (
        published.cols == ("school_exclusion", "weapon_carrying")
        and published.cell("RG1", "weapon_carrying") is None
    )


def test_view_schemas_stay_out_of_the_event_catalogue() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.avsc")) == [
        "views.area_counts.avsc",
        "views.person_profile.avsc",
    ]
    names = set(load_catalogue().event_types)
    assert names and not any(n.startswith("views.") for n in names)


def test_area_stage_counts_a_fact_of_a_published_week_in_the_next_open_week() -> None:
    store = MemoryStore()
    frozen = {"2026-W11"}
    area = AreaStage(TableAreaCounts("district"), store, NAMES, frozen=frozen)
    late = rec(fact("late", "p.a", ["weapon_carrying"]), "late", NAMES.area_facts)  # 2026-W11
    result = area.process([late])
    area.commit(result)
    assert result.weeks == {"2026-W12"} and set(store.data) == {row_key("RG1", "2026-W12")}
    assert area.counts.table("2026-W11") == {} and area.counts.table("2026-W12") == {
        "RG1": {"weapon_carrying": 1}
    }
    frozen.add("2026-W12")
    assert area.process([late]).weeks == set()  # a replay finds it where it was counted


def test_area_stage_names_the_facts_that_missed_their_published_week() -> None:
    frozen = {"2026-W11"}
    area = AreaStage(TableAreaCounts("district"), MemoryStore(), NAMES, frozen=frozen)
    late = rec(fact("late", "p.a", ["weapon_carrying"]), "late", NAMES.area_facts)  # 2026-W11
    on_time = rec(fact("on-time", "p.b", ["weapon_carrying"]), "on-time", NAMES.area_facts)
    frozen.discard("2026-W11")
    assert area.process([on_time]).late == []  # its own week is open
    frozen.add("2026-W11")
    assert area.process([late]).late == [("late", "2026-W11", "2026-W12")]
    assert area.process([late]).late == []  # a replay changes nothing, so it is not late again
