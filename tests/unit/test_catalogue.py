"""The schema catalogue: every event type loads, has the contract's shape, and is fully documented."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import load_schema

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.avro.event_types import BUS_SECTOR, SECTORS
from streams.errors import ConfigurationError
from streams.settings import ROOT

SCHEMAS = ROOT / "schemas"
DOMAIN_EVENT_TYPES = {
    "police.crime_recorded",
    "police.stop_search",
    "police.missing_person",
    "health.ed_assault_attendance",
    "education.exclusion",
    "education.attendance_alert",
    "education.placement_change",
    "social_care.assessment_factors",
    "social_care.plan_event",
    "social_care.missing_episode",
    "probation.supervision_event",
    "youth_justice.outcome",
    "housing.homelessness_case",
}
PROTECTIVE = {"education.attendance_recovered", "youth_justice.programme_engagement"}
BUS = {"bus.subject_request"}  # data subject requests, published by every partner


@pytest.fixture
def schemas_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    return target


def _walk_types(t: Any) -> Iterator[dict[str, Any]]:
    if isinstance(t, list):
        for b in t:
            yield from _walk_types(b)
    elif isinstance(t, dict):
        yield t
        for f in t.get("fields", []):
            yield from _walk_types(f["type"])
        if "items" in t:
            yield from _walk_types(t["items"])


def test_every_domain_event_type_and_protective_event_is_catalogued() -> None:
    cat = load_catalogue(SCHEMAS)
    assert set(cat.event_types) == DOMAIN_EVENT_TYPES | PROTECTIVE | BUS
    assert all(et.sector in (*SECTORS, BUS_SECTOR) for et in cat.event_types.values())


def test_event_shape_follows_the_contract() -> None:
    cat = load_catalogue(SCHEMAS)
    for name, et in cat.event_types.items():
        fields = [f["name"] for f in et.schema["fields"]]
        head = (
            ["envelope", "location"]
            if name == "health.ed_assault_attendance"
            else ["envelope", "subject", "location"]
        )
        assert fields[: len(head)] == head, name
        assert et.schema["namespace"] == "sharingbus.events"
        env = et.fields["envelope.event_id"].avro_type
        assert env == {"type": "string", "logicalType": "uuid"}
        assert et.fields["envelope.occurred_at"].avro_type["logicalType"] == "timestamp-millis"
        assert et.fields["location.description"].tags == {"pii:free_text"}


def test_every_field_is_documented_and_every_enum_can_grow() -> None:
    cat = load_catalogue(SCHEMAS)
    for et in cat.event_types.values():
        assert all(info.doc for info in et.fields.values()), et.name
        enums = [t for t in _walk_types(et.schema) if t.get("type") == "enum"]
        assert enums, et.name
        assert all(t["default"] in t["symbols"] for t in enums), et.name


def test_ed_attendances_carry_no_person_identifiers() -> None:
    et = load_catalogue(SCHEMAS).event_type("health.ed_assault_attendance")
    assert not et.has_subject
    assert not [p for p, f in et.fields.items() if any(t.startswith("identifier:") for t in f.tags)]
    assert "age_band" in et.fields and "date_of_birth" not in json.dumps(et.schema)
    assert et.paths_with_tag("special_category:health") == ["site_code", "arrival_at", "disposal"]


def test_tags_reach_nested_and_array_paths() -> None:
    et = load_catalogue(SCHEMAS).event_type("police.crime_recorded")
    assert et.paths_with_tag("identifier:nhs_number") == ["subject.nhs_number", "people[].subject.nhs_number"]
    upn = et.fields["people[].subject.upn"]
    assert upn.tags == {"pii:direct", "identifier:upn", "special_category:criminal_offence"}
    assert upn.nullable and upn.avro_type == "string"
    # a named type used a second time is resolved for callers, not left as a bare name
    assert et.fields["people[].subject"].avro_type["name"] == "sharingbus.Subject"
    assert et.fields["people[].subject.gender"].avro_type["symbols"][-1] == "UNKNOWN"
    dob = et.fields["subject.date_of_birth"]
    assert dob.avro_type == {"type": "int", "logicalType": "date"} and "pii:quasi" in dob.tags


def test_schema_files_resolve_with_fastavro_load_schema() -> None:
    parsed: Any = load_schema(str(SCHEMAS / "police.crime_recorded.avsc"))
    assert parsed["name"] == "sharingbus.events.PoliceCrimeRecorded"


def test_partners_publish_only_their_sectors_event_types() -> None:
    cat = load_catalogue(SCHEMAS)
    assert {p.sector for p in cat.partners.values()} == set(SECTORS)
    for p in cat.partners.values():
        assert "." not in p.id
        assert all(cat.event_type(et).sector in (p.sector, BUS_SECTOR) for et in p.event_types)
        assert p.event_types >= BUS
    published = {et for p in cat.partners.values() for et in p.event_types}
    assert published == set(cat.event_types)
    topic_list = cat.raw_topics()
    assert (
        "reading_schools",
        "education.exclusion",
        topics.raw("reading_schools", "education.exclusion"),
    ) in topic_list
    assert cat.partners_for("health.ed_assault_attendance") == ["john_radcliffe_ed", "royal_berkshire_ed"]


def test_unknown_names_raise_configuration_errors() -> None:
    cat = load_catalogue(SCHEMAS)
    with pytest.raises(ConfigurationError, match=r"unknown event type 'police\.nope'"):
        cat.event_type("police.nope")
    with pytest.raises(ConfigurationError, match="unknown partner 'nobody'"):
        cat.partner("nobody")


def test_cached_until_a_file_changes(schemas_copy: Path) -> None:
    first = load_catalogue(schemas_copy)
    assert load_catalogue(schemas_copy) is first
    path = schemas_copy / "education.exclusion.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "extra", "type": ["null", "string"], "default": None, "doc": "New."})
    path.write_text(json.dumps(schema))
    assert "extra" in load_catalogue(schemas_copy).event_type("education.exclusion").fields


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["fields"][3].pop("doc"), "school_urn: field has no doc"),
        (lambda s: s["fields"][4]["type"].pop("default"), "needs a default symbol"),
        (
            lambda s: s["fields"].insert(0, s["fields"].pop(2)),
            "fields must start with envelope, subject, location",
        ),
        (lambda s: s["fields"][3].update(pii="secret"), "pii must be one of"),
        (lambda s: s["fields"][3].update(type="sharingbus.Nope"), "unknown type 'sharingbus.Nope'"),
    ],
)
def test_a_bad_schema_fails_naming_its_file(schemas_copy: Path, edit: Any, message: str) -> None:
    path = schemas_copy / "education.exclusion.avsc"
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema))
    with pytest.raises(ConfigurationError, match=message) as info:
        load_catalogue(schemas_copy)
    assert "education.exclusion.avsc" in str(info.value)


def test_partner_publishing_another_sectors_events_is_refused(schemas_copy: Path) -> None:
    path = schemas_copy / "partners.yaml"
    path.write_text(
        path.read_text().replace("      - housing.homelessness_case", "      - police.stop_search")
    )
    with pytest.raises(ConfigurationError, match=r"partners.yaml: partners.reading_housing.event_types"):
        load_catalogue(schemas_copy)
