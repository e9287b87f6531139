"""Emission holds a bounded number of profiles per job, and remembers area rows as fingerprints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agents.views_emit import Emitter
from agents.views_reader import LiveViews
from streams.deadletter import Output
from streams.settings import ROOT
from streams.views.area_stage import TableAreaCounts
from streams.views.factors import load_factors
from streams.views.profiles import Profile, apply_fact, rescore
from streams.views.state import ViewsTopics

NAMES = ViewsTopics()
NOW = datetime(2026, 3, 15, tzinfo=UTC)
FACTORS = load_factors(ROOT / "factors.yaml").factors


class Producer:
    def __init__(self) -> None:
        self.sent: list[Output] = []

    def send_all(self, outputs: Sequence[Output], deadline_s: float | None = None) -> int:
        self.sent += outputs
        return 0


class Schemas:
    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        return json.dumps(record, default=str, sort_keys=True).encode()


class Sink:
    def __init__(self) -> None:
        self.profiles: list[str] = []
        self.fail = False

    def upsert_profiles(self, profiles: Sequence[Profile]) -> int:
        if self.fail:
            raise OSError("PostgreSQL is down")
        self.profiles += [p.person_token for p in profiles]
        return len(profiles)

    def delete_people(self, tokens: Sequence[str]) -> int:
        return len(tokens)

    def upsert_area_table(self, week: str, table: Any) -> int:
        return 0


def _live(profiles: dict[str, Any], counts: TableAreaCounts) -> LiveViews:
    return LiveViews(profiles=profiles, counts=counts, factors=FACTORS, threshold=2, round_to=0)


def _profile(token: str) -> dict[str, Any]:
    p = Profile(token)
    apply_fact(
        p,
        {
            "event_id": f"e-{token}",
            "source_partner": "reading_schools",
            "occurred_at": "2026-03-10T10:00:00+00:00",
            "factors": ["weapon_carrying"],
        },
    )
    rescore(p, NOW, {"weapon_carrying": 3.0})
    return p.to_dict()


def _emitter(sink: Sink | None = None) -> tuple[Emitter, Producer]:
    producer = Producer()
    emitter = Emitter(producer, Schemas(), sink, NAMES, "district")  # type: ignore[arg-type]
    return emitter, producer


def test_a_job_takes_at_most_the_limit_and_the_rest_stays_pending() -> None:
    sink = Sink()
    emitter, producer = _emitter(sink)
    profiles = {f"p.{i:03d}": _profile(f"p.{i:03d}") for i in range(12)}
    live = _live(profiles, TableAreaCounts())
    emitter.mark_profiles(dict.fromkeys(profiles, 0))
    seen: list[str] = []
    sizes = []
    while True:
        job = emitter.take(live, limit=5)
        if job.empty:
            break
        sizes.append(len(job.profiles))
        assert job.profiles_topic == job.profiles_sink == set(job.profiles)
        emitter.settle(job, emitter.run(job))
        seen += sorted(job.profiles)
    assert sizes == [5, 5, 2]
    assert sorted(seen) == sorted(profiles) == sorted(sink.profiles)
    assert sorted(o.key.decode() for o in producer.sent if o.key is not None) == sorted(profiles)
    assert emitter.pending() == 0


def test_a_failed_job_is_queued_again_and_only_for_what_failed() -> None:
    sink = Sink()
    emitter, _ = _emitter(sink)
    profiles = {f"p.{i}": _profile(f"p.{i}") for i in range(4)}
    live = _live(profiles, TableAreaCounts())
    emitter.mark_profiles(dict.fromkeys(profiles, 0))
    sink.fail = True
    job = emitter.take(live, limit=3)
    outcome = emitter.run(job)
    assert outcome.topic_ok and not outcome.sink_ok
    emitter.settle(job, outcome)
    assert emitter.pending() == 4  # three back for the sink, one never taken
    sink.fail = False
    rest = emitter.take(live, limit=10)
    assert rest.profiles_sink == set(profiles) and rest.profiles_topic == {"p.3"}


def test_area_rows_are_remembered_as_fingerprints_and_sent_only_when_changed() -> None:
    emitter, producer = _emitter()
    counts = TableAreaCounts()
    for n in range(5):
        counts.apply(
            {
                "event_id": f"e{n}",
                "occurred_at": "2026-03-10T10:00:00+00:00",
                "factors": ["weapon_carrying"],
                "area": {"district": "RG1" if n < 3 else "OX4"},
            }
        )
    live = _live({}, counts)

    def emit() -> list[str]:
        producer.sent.clear()
        emitter.mark_weeks(counts.weeks())
        job = emitter.take(live)
        emitter.settle(job, emitter.run(job))
        return sorted(o.key.decode() for o in producer.sent if o.key is not None)

    assert emit() == []  # an open week is never emitted
    live.snapshots.freeze("2026-W11", counts.table("2026-W11"), live.columns)
    assert emit() == ["ALL|2026-W11", "OX4|2026-W11", "RG1|2026-W11"]
    assert emit() == []  # nothing changed: nothing sent
    counts.retract("e0")
    assert emit() == []  # a frozen week never changes on the topic
    remembered = emitter._last_rows["2026-W11"]
    assert all(isinstance(v, tuple) for v in remembered.values())
    assert len({id(v[0]) for v in remembered.values()}) == 1  # one column tuple shared by every row
