"""Governed combination, without a broker: enforcer -> linker -> views, run in process.

Each event is decided by the real `Enforcer` on the shipped agreements (or a variant), its
`link.identifiers` records go through the real `LinkerStage` and the `link.person` records through
the real `ProfileStage` over memory stores: exactly the code the worker runs, minus Kafka.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastavro import schemaless_writer

from agents.linker import LinkerStage
from streams import topics
from streams.agreements import PlanSet, compile_plans, load_agreements
from streams.avro.catalogue import Catalogue
from streams.avro.serde import SchemaCache
from streams.deadletter import Output, RawRecord
from streams.enforce.audit import AuditChain, audit_partition
from streams.enforce.engine import Enforcer
from streams.enforce.link_facts import make_link_facts
from streams.linkage.linker import Linker
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.keys import KeyRing
from streams.settings import Settings
from streams.views.profile_stage import ProfileStage
from streams.views.profiles import Profile
from streams.views.state import MemoryStore, ViewsTopics
from tests.support.registry import MemoryRegistry

from .conftest import EXAMPLES, TODAY

# 23:47:12 on a Saturday: a time to the second that must not survive into any person view
OCCURRED = datetime(2026, 11, 14, 23, 47, 12, tzinfo=UTC)


class _Registry(MemoryRegistry):
    """One writer schema per event type, its id by event type name."""

    def __init__(self, catalogue: Catalogue) -> None:
        super().__init__()
        self.ids = {et.name: self.add(et.schema) for et in catalogue.event_types.values()}


@dataclass
class Bus:
    """One enforcer, one linker and the profile views, wired by lists instead of topics."""

    catalogue: Catalogue
    planset: PlanSet
    keyring: KeyRing
    audit: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    person: list[dict[str, Any]] = field(default_factory=list)
    profiles: MemoryStore = field(default_factory=MemoryStore)

    def __post_init__(self) -> None:
        self.registry = _Registry(self.catalogue)
        planset = self.planset
        settings = Settings()

        class _Plans:
            def current(self) -> PlanSet:
                return planset

        self.enforcer = Enforcer(
            catalogue=self.catalogue,
            plans=_Plans(),
            schemas=SchemaCache(self.registry),
            audit_partitions=1,
            recover_chains=lambda ids: {c: AuditChain(c, partition=audit_partition(c, 1)) for c in ids},
            link_facts=make_link_facts(settings, self.catalogue, self.keyring),
        )
        self.view_tokens = ViewTokens(self.keyring, self.keyring.ids[0])
        self._sent: list[Output] = []
        self.linker = LinkerStage(self._sent.extend, Linker, None, self.view_tokens)
        self.views = ProfileStage(self.profiles, MemoryStore(), {}, ViewsTopics())
        self.offset = 0

    def publish(self, event: dict[str, Any]) -> None:
        """Encode `event` as its partner would and run it through every stage."""
        envelope = event["envelope"]
        et = self.catalogue.event_type(envelope["event_type"])
        buf = io.BytesIO()
        buf.write(b"\x00" + self.registry.ids[et.name].to_bytes(4, "big"))
        schemaless_writer(buf, et.parsed, event)
        topic = topics.raw(envelope["source_partner"], et.name)
        record = RawRecord(topic, 0, self.offset, None, buf.getvalue())
        self.offset += 1
        self.enforcer.prepare([record])
        outputs = self.enforcer.process_batch([record]).outputs
        self.audit += [json.loads(o.value or b"{}") for o in outputs if o.topic == topics.AUDIT_DECISIONS]
        links = [o for o in outputs if o.topic == topics.LINK_IDENTIFIERS]
        self.links += [json.loads(o.value or b"{}") for o in links]
        self._sent.clear()
        self.linker.process(
            [
                RawRecord(topics.LINK_IDENTIFIERS, 0, self.offset + i, o.key, o.value)
                for i, o in enumerate(links)
            ]
        )
        person = [o for o in self._sent if o.topic == topics.LINK_PERSON]
        self.person += [json.loads(o.value or b"{}") for o in person]
        result = self.views.process(
            [RawRecord(topics.LINK_PERSON, 0, self.offset + i, o.key, o.value) for i, o in enumerate(person)]
        )
        self.views.commit(result)

    def all_profiles(self) -> dict[str, Profile]:
        return {token: Profile.from_dict(raw) for token, raw in self.profiles.data.items()}

    def factors(self) -> set[str]:
        return {f for p in self.all_profiles().values() for f in p.factors}


def _planset(catalogue: Catalogue, keyring: KeyRing, directory: Path = EXAMPLES) -> PlanSet:
    return compile_plans(load_agreements(directory, catalogue, today=TODAY), catalogue, keyring)


@pytest.fixture
def bus(catalogue: Catalogue, keyring: KeyRing) -> Bus:
    return Bus(catalogue, _planset(catalogue, keyring), keyring)


# The partner each event type is published by in these tests (the one its agreement names).
PARTNERS = {"education.exclusion": "reading_schools"}


def _event(make_event: Callable[..., dict[str, Any]], event_type: str, **overrides: Any) -> dict[str, Any]:
    event = make_event(event_type, overrides)
    event["envelope"]["occurred_at"] = OCCURRED
    event["envelope"]["source_partner"] = PARTNERS.get(event_type, event["envelope"]["source_partner"])
    return event


def _crime(make_event: Callable[..., dict[str, Any]], category: str) -> dict[str, Any]:
    return _event(
        make_event,
        "police.crime_recorded",
        crime_category=category,
        knife_or_sharp_instrument=False,
        firearm=False,
        **{"people[].role": "SUSPECT"},
    )


def _decision(bus: Bus, event: dict[str, Any], recipient: str) -> dict[str, Any]:
    event_id = str(event["envelope"]["event_id"])
    (record,) = [a for a in bus.audit if a["event_id"] == event_id and a["recipient"] == recipient]
    return record


def test_a_denied_event_contributes_nothing_to_any_profile(
    bus: Bus, make_event: Callable[..., dict[str, Any]]
) -> None:
    burglary = _crime(make_event, "BURGLARY")  # outside the police -> VRU row conditions
    housing = _event(make_event, "housing.homelessness_case")  # no agreement shares housing events
    youth = _event(make_event, "youth_justice.outcome")  # nor youth justice outcomes
    for event in (burglary, housing, youth):
        bus.publish(event)
    assert _decision(bus, burglary, "vru_analysts")["outcome"] == "denied"
    assert any(link["factors"] for link in bus.links)  # the area counts still count them
    assert bus.all_profiles() == {}
    assert [p for p in bus.person if p.get("person_token")] == []
    violent = _crime(make_event, "VIOLENCE_AND_SEXUAL_OFFENCES")
    bus.publish(violent)
    assert _decision(bus, violent, "vru_analysts")["outcome"] == "shared"
    assert bus.factors() == {"involvement_in_violence"}  # nothing of the three denied events


def test_social_care_mental_health_reaches_no_profile_without_a_basis(
    bus: Bus, make_event: Callable[..., dict[str, Any]]
) -> None:
    assessment = _event(
        make_event, "social_care.assessment_factors", factors=["MENTAL_HEALTH", "SELF_HARM", "GANGS"]
    )
    bus.publish(assessment)
    assert _decision(bus, assessment, "vru_analysts")["outcome"] == "shared"
    assert bus.factors() == {"gang_association"}
    person_facts = [p for p in bus.person if p.get("person_token")]
    assert person_facts and "mental_health_need" not in json.dumps(person_facts)
    combined = _decision(bus, assessment, "person_profile:vru_analysts")
    assert combined["released"] == ["gang_association"]
    assert "mental_health_need" in combined["withheld"]


def test_a_recipient_not_granted_a_view_gets_nothing(
    bus: Bus, make_event: Callable[..., dict[str, Any]]
) -> None:
    exclusion = _event(make_event, "education.exclusion", exclusion_type="PERMANENT")
    supervision = _event(make_event, "probation.supervision_event", rosh_level="HIGH")
    bus.publish(exclusion)
    bus.publish(supervision)
    assert _decision(bus, exclusion, "reading_yjs_team")["outcome"] == "shared"  # the events flow
    assert _decision(bus, supervision, "tvp_offender_management")["outcome"] == "shared"
    assert bus.all_profiles() == {}
    assert {p.get("recipient") for p in bus.person} == {None}
    recipients = {a["recipient"] for a in bus.audit if a["recipient"].startswith("person_profile:")}
    assert recipients == {"person_profile:*"}


def test_two_recipients_tokens_differ_and_times_are_coarse(
    catalogue: Catalogue,
    keyring: KeyRing,
    make_event: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    directory = tmp_path / "agreements"
    shutil.copytree(EXAMPLES, directory)
    yjs = yaml.safe_load((directory / "education-yjs.yaml").read_text())
    yjs["views"] = {"person_profile": {"event_types": {"education.exclusion": None}}}
    (directory / "education-yjs.yaml").write_text(yaml.safe_dump(yjs))
    bus = Bus(catalogue, _planset(catalogue, keyring, directory), keyring)
    bus.publish(_crime(make_event, "POSSESSION_OF_WEAPONS"))
    bus.publish(_event(make_event, "education.exclusion", exclusion_type="PERMANENT"))
    by_recipient = {p["recipient"]: p["person_token"] for p in bus.person if p.get("recipient")}
    assert set(by_recipient) == {"vru_analysts", "reading_yjs_team"}
    vru, yjs_token = by_recipient["vru_analysts"], by_recipient["reading_yjs_team"]
    assert vru != yjs_token
    assert not vru.startswith("p.") and not yjs_token.startswith("p.")
    profiles = bus.all_profiles()
    assert set(profiles) == {vru, yjs_token}
    assert set(profiles[yjs_token].factors) == {"school_exclusion"}  # not the police facts
    for profile in profiles.values():
        for stats in profile.factors.values():
            for seen in (stats.first_seen, stats.last_seen):
                assert (seen.hour, seen.minute, seen.second) == (0, 0, 0)
                assert seen.date() == OCCURRED.date()
    person_facts = [p for p in bus.person if p.get("person_token")]
    assert person_facts and "23:47" not in json.dumps(person_facts)


def test_every_combination_is_a_ledger_record(bus: Bus, make_event: Callable[..., dict[str, Any]]) -> None:
    violent = _crime(make_event, "VIOLENCE_AND_SEXUAL_OFFENCES")
    burglary = _crime(make_event, "BURGLARY")
    bus.publish(violent)
    bus.publish(burglary)
    shared = _decision(bus, violent, "person_profile:vru_analysts")
    assert shared["outcome"] == "shared"
    assert shared["agreement_id"] == "police-to-vru-analysts"
    assert shared["released"] == ["involvement_in_violence"]
    assert "combined into vru_analysts's person_profile" in shared["reason"]
    denied = _decision(bus, burglary, "person_profile:vru_analysts")
    assert denied["outcome"] == "denied" and denied["released"] == []
    assert "not shared with vru_analysts" in denied["reason"]
    area = _decision(bus, burglary, "area_counts:public_open_data")
    assert area["outcome"] == "shared" and area["released"] == ["involvement_in_offending"]
    # one chain: combination records are sealed in the same hash chain as the decisions
    assert [a["seq"] for a in bus.audit] == list(range(1, len(bus.audit) + 1))
