"""Issue 17, finding 5, against a real worker: the attacker reads `views.area_counts` and learns nothing.

The attacker's strategy, step by step on one closed week: a base population, then one person with
child sexual exploitation (CSE) in area A1, then two more, then seven more (the cell reaches 10),
then one person with twelve weapon events in A4, then one CSE person in A4. After each step the
attacker waits for the worker to publish and reads every version of every record of the topic,
then looks for anything below the threshold (`tests.support.disclosure_attack`): a published small
value, a cell that one person makes look like many, two versions of a period that differ by less
than the threshold, a suppressed cell pinned or proved non-zero by the totals.

Each step is followed by a probe fact in a week of its own (area PROBE); all facts go to one
partition of `link.person`, so when the probe's week shows on the topic the step has been counted
and published (whatever "published" means: a live re-publication, or a frozen week).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from agents.views_web import token_partition
from streams import topics
from streams.kafka.reader import read_to_end
from streams.privacy.keys import KeyRing
from streams.settings import Settings
from tests.support.disclosure_attack import attack, from_area_records
from tests.support.stack import reader_config
from tests.workers import discard, start_worker

PARTITIONS = 4


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class Attack:
    def __init__(self) -> None:
        start = date.today() - timedelta(days=6 * 365)
        self.monday = start - timedelta(days=start.weekday()) + timedelta(weeks=uuid.uuid4().int % 40)
        self.uid = uuid.uuid4().hex[:6].upper()
        self.areas = {name: f"{name}{self.uid}" for name in ("A1", "A2", "A3", "A4", "PROBE")}
        self.events = iter(range(1_000_000))
        self.tokens: dict[str, str] = {}

    def week(self, offset: int) -> str:
        return _week(self.monday + timedelta(weeks=offset))

    def token(self, name: str) -> str:
        """A person token on partition 0, so every fact of the attack is read in order."""
        if name not in self.tokens:
            while token_partition(token := f"p.{uuid.uuid4().hex[:26]}", PARTITIONS) != 0:
                pass
            self.tokens[name] = token
        return self.tokens[name]

    def fact(self, person: str, factor: str, area: str, week_offset: int = 0) -> dict[str, Any]:
        day = self.monday + timedelta(weeks=week_offset, days=2)
        return {
            "kind": "fact",
            "event_id": str(uuid.uuid4()),
            "subject_index": 0,
            "person_token": self.token(person),
            "event_type": "test.event",
            "source_partner": "thames_valley_police",
            "occurred_at": datetime.combine(day, dtime(12), UTC).isoformat(),
            "role": None,
            "factors": [factor],
            "area": {"lsoa": None, "district": self.areas[area]},
        }

    def steps(self) -> list[list[dict[str, Any]]]:
        base = [self.fact(f"a1w{i}", "weapon_carrying", "A1") for i in range(25)]
        base += [self.fact(f"a2w{i}", "weapon_carrying", "A2") for i in range(15)]
        base += [self.fact(f"a2s{i}", "school_exclusion", "A2") for i in range(12)]
        base += [self.fact(f"a3s{i}", "school_exclusion", "A3") for i in range(30)]
        cse = [self.fact(f"cse{i}", "sexual_exploitation", "A1") for i in range(10)]
        many = [self.fact("one", "weapon_carrying", "A4") for _ in range(12)]
        return [base, cse[:1], cse[1:3], cse[3:], many, [self.fact("a4cse", "sexual_exploitation", "A4")]]


def _produce(settings: Settings, facts: list[dict[str, Any]]) -> None:
    producer = Producer(settings.kafka_config())
    for f in facts:
        value = json.dumps(f, separators=(",", ":"), sort_keys=True).encode()
        producer.produce(topics.LINK_PERSON, key=f["person_token"].encode(), value=value)
    assert producer.flush(15) == 0


def _records(settings: Settings, weeks: set[str]) -> list[dict[str, Any]]:
    """Every record of the attack's weeks on views.area_counts, in topic order, decoded."""
    deserializer = AvroDeserializer(SchemaRegistryClient(settings.registry_config()))
    ctx = SerializationContext(topics.VIEWS_AREA_COUNTS, MessageField.VALUE)
    out = []
    for msg in read_to_end(reader_config(settings), topics.VIEWS_AREA_COUNTS, timeout=30.0):
        key = (msg.key() or b"").decode()
        if key.rpartition("|")[2] in weeks and msg.value() is not None:
            out.append(deserializer(msg.value(), ctx))
    return out


def _people(facts: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    seen: dict[str, dict[str, set[str]]] = {}
    for f in facts:
        seen.setdefault(f["area"]["district"], {}).setdefault(f["factors"][0], set()).add(f["person_token"])
    return {a: {k: len(v) for k, v in fs.items()} for a, fs in seen.items()}


def test_the_attacker_learns_nothing_below_the_threshold_from_views_area_counts(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    # The views role alone: a worker that enforced and linked would count raw events other tests left
    # on the shared broker.
    settings = settings_factory(topic_partitions=PARTITIONS, roles="views")
    KeyRing.load_or_create(settings.keyring_path)
    a = Attack()
    steps = a.steps()
    attacked = {a.week(k) for k in range(len(steps))}  # the week, and the weeks after it
    probes = {a.week(20 + k) for k in range(len(steps))}
    worker = start_worker(settings, tmp_path / "logs", name="attacked")
    try:
        for k, step in enumerate(steps):
            _produce(settings, [*step, a.fact(f"probe{k}", "weapon_carrying", "PROBE", 20 + k)])
            probe = a.week(20 + k)
            deadline = datetime.now(UTC) + timedelta(seconds=60)
            while not any(r["week"] == probe for r in _records(settings, {probe})):
                assert datetime.now(UTC) < deadline, f"step {k} was never published\n{worker.log()[-3000:]}"
        records = _records(settings, attacked | probes)
    finally:
        discard(worker)
    versions = [v for v in from_area_records(records) if v.week in attacked]
    assert versions and {v.week for v in versions} <= attacked

    # The truth behind each published week: the attack's week holds at most all of its facts (if it is
    # re-published as they arrive), each later week at most the step that came after the one before.
    truth = {a.week(k): _people(step) for k, step in enumerate(steps)}
    truth[a.week(0)] = _people([f for step in steps for f in step])
    found = attack(versions, truth)
    assert found == [], "\n".join(found[:20])
    by_week: dict[str, int] = {}
    for v in versions:
        by_week[v.week] = by_week.get(v.week, 0) + 1
    assert set(by_week.values()) == {1}, by_week  # each period published once
    assert all(v.round_to == 5 and v.threshold == 10 for v in versions)
