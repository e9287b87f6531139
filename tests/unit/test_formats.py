"""Validated formats (LSOA codes, offence codes, school URNs): refused by the publisher, dead-lettered
by the enforcer, so a field that may be shared because it has a format never carries free text."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from streams import deadletter as dl
from streams import topics
from streams.agreements import PlanSet, compile_plans, load_agreements
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.avro.formats import FORMATS, checker_for, is_free_text
from streams.avro.serde import SchemaCache, encode
from streams.deadletter import Output, RawRecord
from streams.enforce.audit import AuditChain
from streams.enforce.engine import Enforcer
from streams.privacy.keys import KeyRing
from streams.publish.publisher import EventInvalid, prepare_event
from streams.publish.simulate import Simulation
from streams.settings import ROOT
from tests.support.registry import MemoryRegistry

ATTACK = "Jordan SMITH RG1 2AB"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "schemas")


def _crime(catalogue: Catalogue) -> dict[str, Any]:
    for partner, event_type, event in Simulation(seed=3, people=40).events(400):
        if event_type == "police.crime_recorded" and (event.get("location") or {}).get("lsoa_code"):
            return prepare_event(catalogue, partner, event_type, event)
    raise AssertionError("the simulation made no crime with a location")


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("lsoa_code", ["E01016001", "W01001234"], [ATTACK, "E0101600", "e01016001", "E01016001 "]),
        ("offence_code", ["8/1", "105/1", "10C/1", "34B/1"], ["Robbery of Jordan", "8", "8/1 Jordan"]),
        ("school_urn", ["109001", "123456"], ["10900", "012345", "Oakwood school"]),
        ("offence_group", ["Violence against the person", "robbery"], ["Robbery of Jordan SMITH"]),
    ],
)
def test_each_format_accepts_its_shape_only(name: str, good: list[str], bad: list[str]) -> None:
    fmt = FORMATS[name]
    assert all(fmt.valid(v) for v in good)
    assert not any(fmt.valid(v) for v in bad)


def test_strings_without_enum_or_format_count_as_free_text() -> None:
    assert is_free_text("string", {})
    assert is_free_text({"type": "array", "items": "string"}, {})
    assert not is_free_text("string", {"format": "lsoa_code"})
    assert not is_free_text({"type": "enum", "name": "x", "symbols": ["A"]}, {})
    assert not is_free_text({"type": "string", "logicalType": "uuid"}, {})
    assert not is_free_text("long", {})


def test_the_schemas_declare_the_formats(catalogue: Catalogue) -> None:
    crime = catalogue.event_type("police.crime_recorded")
    assert crime.formatted == {"location.lsoa_code": "lsoa_code", "offence_code": "offence_code"}
    assert "pii:free_text" in crime.fields["offence_description"].tags
    assert catalogue.event_type("education.exclusion").formatted["school_urn"] == "school_urn"
    assert catalogue.event_type("police.missing_person").formatted["found_location.lsoa_code"] == "lsoa_code"


def test_the_publisher_rejects_a_bad_value_naming_the_field_not_the_value(catalogue: Catalogue) -> None:
    event = _crime(catalogue)
    event["location"]["lsoa_code"] = ATTACK
    with pytest.raises(EventInvalid) as exc:
        prepare_event(catalogue, "thames_valley_police", "police.crime_recorded", event)
    assert exc.value.problems == [("location.lsoa_code", "not an ONS LSOA code (e.g. E01016001)")]
    assert "Jordan" not in str(exc.value)


def _enforce(catalogue: Catalogue, event: dict[str, Any]) -> list[Output]:
    et = catalogue.event_type("police.crime_recorded")
    planset = compile_plans(
        load_agreements(ROOT / "agreements", catalogue, today=date(2026, 6, 1)),
        catalogue,
        KeyRing.generate(),
    )
    registry = MemoryRegistry()
    schema_id = registry.add(et.schema)

    class _Plans:
        def current(self) -> PlanSet:
            return planset

    enforcer = Enforcer(
        catalogue=catalogue,
        plans=_Plans(),
        schemas=SchemaCache(registry),
        audit_partitions=1,
        recover_chains=lambda ids: {i: AuditChain(i) for i in ids},
    )
    topic = topics.raw("thames_valley_police", "police.crime_recorded")
    rec = RawRecord(topic, 0, 7, b"k", encode(et.parsed, schema_id, event))
    enforcer.prepare([rec])
    return enforcer.process_batch([rec]).outputs


def test_the_enforcer_dead_letters_a_bad_value_with_the_reason(catalogue: Catalogue) -> None:
    event = _crime(catalogue)
    event.update(crime_category="ROBBERY")  # the VRU's agreement would share it
    good = _enforce(catalogue, copy.deepcopy(event))
    assert any(o.topic.startswith("shared.vru_analysts.") for o in good)

    event["location"]["lsoa_code"] = ATTACK
    out = _enforce(catalogue, event)
    assert [o.topic for o in out] == [topics.dlq("enforcer")]
    headers = dict(out[0].headers or [])
    assert headers["sharingbus.dlq.reason"] == dl.VALIDATION.encode()
    assert headers["sharingbus.dlq.detail"] == b"location.lsoa_code: not an ONS LSOA code (e.g. E01016001)"


def test_checkers_are_built_once_per_event_type(catalogue: Catalogue) -> None:
    et = catalogue.event_type("education.exclusion")
    assert checker_for(et) is checker_for(et)
