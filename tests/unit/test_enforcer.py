"""The enforcement engine alone: `process_batch` over in-memory records and an in-memory registry.

No broker, no database. One case per dead-letter reason (taken from `deadletter.REASONS`, so a new
reason without a case fails here), the oversized output, the audit-chain rollback when the
registry stops answering mid-batch, link facts' vault rows and subject-rights requests in the
result.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest

from streams import deadletter as dl
from streams import topics
from streams.agreements import Decision, PlanSet, compile_plans, load_agreements
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.avro.serde import RegistryUnavailable, SchemaCache, encode
from streams.deadletter import Output, RawRecord
from streams.enforce.audit import AuditChain, audit_partition
from streams.enforce.audit_verify import ChainVerifier
from streams.enforce.engine import Batch, Enforcer
from streams.enforce.link_facts import make_link_facts
from streams.privacy.keys import KeyRing
from streams.publish.publisher import prepare_event
from streams.publish.simulate import Simulation
from streams.settings import ROOT, Settings
from tests.support.registry import MemoryRegistry

POLICE = "thames_valley_police"
CRIME = "police.crime_recorded"
SCHOOLS = "reading_schools"
EXCLUSION = "education.exclusion"
REQUEST = "bus.subject_request"
N_AUDIT = 4


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "schemas")


@pytest.fixture(scope="module")
def keyring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture(scope="module")
def planset(catalogue: Catalogue, keyring: KeyRing) -> PlanSet:
    agreements = load_agreements(ROOT / "agreements", catalogue, today=date(2026, 6, 1))
    return compile_plans(agreements, catalogue, keyring)


@pytest.fixture(scope="module")
def events(catalogue: Catalogue) -> dict[str, tuple[str, dict[str, Any]]]:
    """One valid event per type (the first the simulation makes), as its partner publishes it."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for partner, event_type, event in Simulation(seed=7, people=60).events(3000):
        if event_type == CRIME and not (event.get("location") or {}).get("lsoa_code"):
            continue  # a crime with a location: its LSOA format is checked
        if event_type == CRIME:
            event = {**event, "crime_category": "ROBBERY"}  # the VRU's agreement shares it
        if event_type not in found:
            found[event_type] = (partner, prepare_event(catalogue, partner, event_type, event))
    assert {CRIME, EXCLUSION} <= found.keys()
    return found


class _Plans:
    def __init__(self, planset: PlanSet) -> None:
        self.planset = planset

    def current(self) -> PlanSet:
        return self.planset


class Rig:
    """An enforcer over an in-memory registry, with each event type's writer schema registered."""

    def __init__(self, catalogue: Catalogue, planset: PlanSet, keyring: KeyRing, **kw: Any) -> None:
        self.catalogue = catalogue
        self.registry = MemoryRegistry()
        self.ids = {name: self.registry.add(et.schema) for name, et in catalogue.event_types.items()}
        self.plans = _Plans(planset)
        self.enforcer = Enforcer(
            catalogue=catalogue,
            plans=self.plans,
            schemas=SchemaCache(self.registry),
            audit_partitions=N_AUDIT,
            recover_chains=lambda ids: {c: AuditChain(c, partition=audit_partition(c, N_AUDIT)) for c in ids},
            **kw,
        )
        self.offset = 0

    def record(
        self, partner: str, event_type: str, event: Mapping[str, Any], *, topic: str | None = None
    ) -> RawRecord:
        value = encode(self.catalogue.event_type(event_type).parsed, self.ids[event_type], event)
        return self.raw(topic or topics.raw(partner, event_type), value)

    def raw(self, topic: str, value: bytes) -> RawRecord:
        self.offset += 1
        return RawRecord(topic, 0, self.offset, b"key", value, [("trace", b"1")])

    def run(self, *records: RawRecord) -> Batch:
        self.enforcer.prepare(records)
        return self.enforcer.process_batch(list(records))


@pytest.fixture
def rig(catalogue: Catalogue, planset: PlanSet, keyring: KeyRing) -> Rig:
    return Rig(catalogue, planset, keyring)


def _reasons(outputs: list[Output]) -> list[str | None]:
    return [
        dl.header(o.headers, "sharingbus.dlq.reason") for o in outputs if o.topic == topics.dlq("enforcer")
    ]


def _audit(outputs: list[Output]) -> list[dict[str, Any]]:
    return [json.loads(o.value or b"") for o in outputs if o.topic == topics.AUDIT_DECISIONS]


def _replace_plans(planset: PlanSet, event_type: str, apply: Callable[[Any], Decision]) -> PlanSet:
    """`planset` with every plan for `event_type` applying `apply(plan)` instead."""
    plans = [
        dataclasses.replace(p, _apply=apply(p)) if p.event_type == event_type else p for p in planset.plans
    ]
    return PlanSet(plans, planset.recipients, planset.version + "-test", planset.agreements, planset.views)


# --- one case per dead-letter reason: (the rig, the events) -> the record it refuses ------------------
Events = dict[str, tuple[str, dict[str, Any]]]


def _decode_error(rig: Rig, ev: Events) -> RawRecord:
    good = rig.record(*ev[CRIME][:1], CRIME, ev[CRIME][1])
    return rig.raw(good.topic, (good.value or b"")[:20])  # a truncated payload


def _unknown_schema(rig: Rig, ev: Events) -> RawRecord:
    good = rig.record(*ev[CRIME][:1], CRIME, ev[CRIME][1])
    return rig.raw(good.topic, b"\x00\x00\x0f\x42\x3f" + (good.value or b"")[5:])


def _schema_mismatch(rig: Rig, ev: Events) -> RawRecord:
    partner, exclusion = ev[EXCLUSION]
    return rig.record(
        partner, EXCLUSION, exclusion, topic=topics.raw(partner, CRIME)
    )  # another type's schema


def _spoofed_partner(rig: Rig, ev: Events) -> RawRecord:
    partner, crime = ev[CRIME]
    return rig.record(partner, CRIME, crime, topic=topics.raw(SCHOOLS, CRIME))


def _validation(rig: Rig, ev: Events) -> RawRecord:
    partner, crime = copy.deepcopy(ev[CRIME])
    crime["location"]["lsoa_code"] = "Jordan SMITH RG1 2AB"  # free text where a format is required
    return rig.record(partner, CRIME, crime)


def _plan_error(rig: Rig, ev: Events) -> RawRecord:
    def apply(plan: Any) -> Callable[[Any], Decision]:
        return lambda event: Decision("shared", {"not": "the output schema"}, "shared")

    rig.plans.planset = _replace_plans(rig.plans.planset, CRIME, apply)
    return rig.record(*ev[CRIME][:1], CRIME, ev[CRIME][1])


def _internal_error(rig: Rig, ev: Events) -> RawRecord:
    def apply(plan: Any) -> Callable[[Any], Decision]:
        def fail(event: Any) -> Decision:
            raise KeyError("a bug")

        return fail

    rig.plans.planset = _replace_plans(rig.plans.planset, CRIME, apply)
    return rig.record(*ev[CRIME][:1], CRIME, ev[CRIME][1])


CASES: dict[str, Callable[[Rig, Events], RawRecord]] = {
    dl.DECODE_ERROR: _decode_error,
    dl.UNKNOWN_SCHEMA: _unknown_schema,
    dl.SCHEMA_MISMATCH: _schema_mismatch,
    dl.SPOOFED_PARTNER: _spoofed_partner,
    dl.VALIDATION: _validation,
    dl.PLAN_ERROR: _plan_error,
    dl.INTERNAL: _internal_error,
}


@pytest.mark.parametrize("reason", sorted(dl.REASONS))
def test_each_dead_letter_reason_keeps_the_original_and_says_why(
    rig: Rig, events: Events, reason: str
) -> None:
    assert reason in CASES, f"no enforcer case for the dead-letter reason {reason!r}"
    rec = CASES[reason](rig, events)
    out = rig.run(rec).outputs
    dead = [o for o in out if o.topic == topics.dlq("enforcer")]
    assert _reasons(out) == [reason] * len(dead) and dead
    assert all((o.key, o.value) == (rec.key, rec.value) for o in dead)
    assert all(("trace", b"1") in (o.headers or []) for o in dead)
    source = f"{rec.topic}/{rec.partition}/{rec.offset}".encode()
    assert all(dl.header(o.headers, "sharingbus.dlq.source") == source.decode() for o in dead)
    assert not [o for o in out if o.topic.startswith("shared.")], "a refused record reaches nobody"


def test_a_valid_event_is_shared_audited_once_per_recipient_and_linked(
    catalogue: Catalogue, planset: PlanSet, keyring: KeyRing, events: Events
) -> None:
    rig = Rig(catalogue, planset, keyring, link_facts=make_link_facts(Settings(), catalogue, keyring))
    partner, crime = events[CRIME]
    batch = rig.run(rig.record(partner, CRIME, crime))
    assert not _reasons(batch.outputs)
    assert [o.topic for o in batch.outputs if o.topic.startswith("shared.")] == [
        topics.shared("vru_analysts", CRIME)
    ]
    audit = _audit(batch.outputs)
    recipients = [r["recipient"] for r in audit if r.get("kind") == "decision" and "agreement_id" in r]
    assert len(recipients) == len(set(recipients)), "one decision per recipient"
    assert [r["recipient"] for r in audit].count("*") == 1, "one default-deny record per event"
    links = [o for o in batch.outputs if o.topic == topics.LINK_IDENTIFIERS]
    assert links and batch.vault_rows, "link facts come with the vault rows they need"
    assert {row[1] for row in batch.vault_rows} == {str(crime["envelope"]["event_id"])}


def test_an_oversized_output_is_a_plan_error_not_a_wedged_batch(
    rig: Rig, events: Events, planset: PlanSet
) -> None:
    partner, crime = events[CRIME]

    def apply(plan: Any) -> Callable[[Any], Decision]:
        def padded(event: Any) -> Decision:
            decision = plan._apply(event)
            if decision.output is not None:  # the real output, with one free-text field grown
                decision.output["envelope"]["source_partner"] = "x" * (dl.MAX_RECORD_BYTES + 1)
            return decision

        return padded

    rig.plans.planset = _replace_plans(planset, CRIME, apply)
    rec = rig.record(partner, CRIME, crime)
    out = rig.run(rec).outputs
    assert not [o for o in out if o.topic.startswith("shared.")]
    assert _reasons(out) == [dl.PLAN_ERROR]
    detail = [dl.header(o.headers, "sharingbus.dlq.detail") for o in out if o.topic == topics.dlq("enforcer")]
    assert "exceeds 900000" in (detail[0] or "")
    vru = [r for r in _audit(out) if r["recipient"] == "vru_analysts"]
    assert [r["outcome"] for r in vru] == ["error"] and "exceeds" in vru[0]["reason"]


def test_the_chains_roll_back_when_the_registry_stops_answering_mid_batch(rig: Rig, events: Events) -> None:
    crime_partner, crime = events[CRIME]
    school_partner, exclusion = events[EXCLUSION]
    first = rig.run(rig.record(crime_partner, CRIME, crime))  # the crime schema is now cached
    heads = {c: (chain.seq, chain.prev_hash) for c, chain in rig.enforcer._chains.items()}

    again = rig.record(crime_partner, CRIME, crime)
    new_type = rig.record(school_partner, EXCLUSION, exclusion)  # its schema is not cached yet
    rig.enforcer.prepare([again, new_type])
    rig.registry.down = True
    with pytest.raises(RegistryUnavailable):
        rig.enforcer.process_batch([again, new_type])
    assert {
        c: (chain.seq, chain.prev_hash) for c, chain in rig.enforcer._chains.items() if c in heads
    } == heads

    rig.registry.down = False
    second = rig.run(again, new_type)
    verifier = ChainVerifier(topics.AUDIT_DECISIONS, N_AUDIT)
    for offset, out in enumerate(
        o for o in first.outputs + second.outputs if o.topic == topics.AUDIT_DECISIONS
    ):
        verifier.feed(out.value, out.partition or 0, offset)
    report = verifier.finish()
    assert report.ok, report.breaks
    assert report.records == len(_audit(first.outputs)) + len(_audit(second.outputs))
    crime_chain = f"{again.topic}/{again.partition}"
    assert report.chains[crime_chain].last_seq == heads[crime_chain][0] + len(
        [r for r in _audit(second.outputs) if r["chain"] == crime_chain]
    )


class _Rights:
    """Subject rights in memory: one restricted partner, and a count of refreshes."""

    request_event_type = REQUEST

    def __init__(self, restricted: str) -> None:
        self.restricted = restricted
        self.refreshed = 0

    def refresh(self) -> None:
        self.refreshed += 1

    def restriction(self, partner: str, event_type: str, event: Mapping[str, Any]) -> str | None:
        return "request r-1" if partner == self.restricted else None


def test_requests_leave_the_batch_for_their_stage_and_restrictions_are_audited(
    catalogue: Catalogue, planset: PlanSet, keyring: KeyRing, events: Events
) -> None:
    rights = _Rights(restricted=events[EXCLUSION][0])
    rig = Rig(catalogue, planset, keyring, rights=rights)
    ask = {
        "envelope": {"occurred_at": datetime(2026, 5, 1, tzinfo=UTC)},
        "kind": "ERASE",
        "event_ids": [str(events[EXCLUSION][1]["envelope"]["event_id"])],
        "subject": None,
        "corrections": {},
        "reason": "asked",
        "requester": f"{SCHOOLS}:dpo",
    }
    request = rig.record(SCHOOLS, REQUEST, prepare_event(catalogue, SCHOOLS, REQUEST, ask))
    restricted = rig.record(*events[EXCLUSION][:1], EXCLUSION, events[EXCLUSION][1])
    rig.enforcer.prepare([request, restricted])
    assert rights.refreshed == 1, "the restriction set is refreshed before the batch"
    batch = rig.enforcer.process_batch([request, restricted])
    assert rights.refreshed == 1, "and never inside it"
    assert [r.record for r in batch.requests] == [request]
    assert not [o for o in batch.outputs if o.topic.startswith("shared.")]
    audit = _audit(batch.outputs)
    assert [(r["recipient"], r["outcome"], r["reason"]) for r in audit] == [
        ("*", "denied", "restricted: request r-1")
    ]
