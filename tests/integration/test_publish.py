"""Publishing on the real broker and registry: SDK round trips, refusals, CLI extracts, simulator.

Raw topic names are fixed and the broker is shared by the session, so every check finds its own
events by event_id.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache, decode
from streams.errors import ConfigurationError, ValidationError
from streams.kafka.reader import read_to_end
from streams.publish.extracts import rejections_path
from streams.publish.publisher import DeliveryError, EventInvalid, Publisher, ensure_raw_topics
from streams.publish.simulate import Simulation, run
from streams.settings import ROOT, Settings

NOW = datetime(2025, 6, 1, tzinfo=UTC)
EXAMPLES = ROOT / "examples" / "extracts"


def _plain(value: Any) -> Any:
    """Decoded values in the publisher's terms: uuids as str, times in UTC."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def _read(settings: Settings, topic: str, ids: set[str]) -> dict[str, bytes]:
    """Values of `topic` whose key is one of `ids`."""
    found = {}
    for msg in read_to_end(settings.kafka_config(**{"fetch.wait.max.ms": 50}), topic, timeout=30):
        key = (msg.key() or b"").decode()
        if key in ids:
            found[key] = msg.value() or b""
    return found


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        SHARINGBUS_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SHARINGBUS_SCHEMA_REGISTRY_URL=settings.schema_registry_url,
    )
    cmd = [sys.executable, "-c", "from sharebus.main import main; main()", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_every_event_type_round_trips_through_broker_and_registry(settings: Settings) -> None:
    catalogue = load_catalogue(settings.schemas_dir)
    ensure_raw_topics(settings, catalogue)
    first: dict[str, tuple[str, dict[str, Any]]] = {}
    for partner, event_type, event in Simulation(21, 800, now=NOW).events(3000):
        first.setdefault(event_type, (partner, event))
    request = {"envelope": {"occurred_at": NOW, "recorded_at": NOW}, "kind": "rectify", "reason": "asked"}
    request |= {"event_ids": [str(uuid.uuid4())], "corrections": {"reason": '"OTHER"'}, "requester": "p:dpo"}
    first["bus.subject_request"] = ("reading_schools", request)  # requests are not simulated
    assert set(first) == set(catalogue.event_types)
    sent = {}
    publishers = {p: Publisher(settings, p, catalogue) for p, _ in first.values()}
    for event_type, (partner, event) in first.items():
        sent[event_type] = publishers[partner].publish(event_type, event)
    for pub in publishers.values():
        pub.close()

    registry = SchemaRegistryClient(settings.registry_config())
    deserializer = AvroDeserializer(registry)
    cache = SchemaCache(registry)
    for event_type, s in sent.items():
        value = _read(settings, s.topic, {s.event_id})[s.event_id]
        decoded = deserializer(value, SerializationContext(s.topic, MessageField.VALUE))
        assert _plain(decoded) == _plain(s.record), event_type
        _, ours = decode(value, cache)
        assert ours == decoded | {"envelope": ours["envelope"]} and ours["envelope"]["event_id"] == s.event_id
    latest = registry.get_latest_version(topics.value_subject(sent["police.crime_recorded"].topic))
    assert '"pii": "direct"' in str(latest.schema.schema_str)  # custom attributes reach the registry


def test_invalid_events_are_refused_with_field_level_messages(settings: Settings) -> None:
    with Publisher(settings, "reading_schools") as pub:
        with pytest.raises(EventInvalid) as info:
            pub.publish(
                "education.exclusion",
                {
                    "envelope": {"occurred_at": "not a time"},
                    "subject": {"date_of_birth": "31/02/2011", "shoe_size": 9},
                    "exclusion_type": "Expelled",
                    "start_date": "2025-03-03",
                    "sessions": "two",
                    "reason": "OFFENSIVE_WEAPON",
                },
            )
        problems = dict(info.value.problems)
        assert set(problems) == {
            "envelope.occurred_at",
            "subject.date_of_birth",
            "subject.shoe_size",
            "school_urn",
            "exclusion_type",
            "sessions",
        }
        assert problems["school_urn"] == "required field missing"
        assert problems["subject.shoe_size"] == "unknown field"
        assert "31/02" not in problems["subject.date_of_birth"]  # personal data never echoed
        assert "'Expelled' is not one of PERMANENT" in problems["exclusion_type"]

        good: dict[str, Any] = {
            "envelope": {"occurred_at": NOW},
            "school_urn": "109012",
            "exclusion_type": "SUSPENSION",
        }
        good |= {"start_date": NOW.date(), "reason": "OTHER"}
        with pytest.raises(ValidationError, match="refused: 'thames_valley_police'") as refused:
            pub.publish(
                "education.exclusion",
                good | {"envelope": {"occurred_at": NOW, "source_partner": "thames_valley_police"}},
            )
        assert refused.value.field == "envelope.source_partner"
        with pytest.raises(ValidationError, match=r"does not publish police\.stop_search"):
            pub.publish("police.stop_search", {})
    with pytest.raises(ConfigurationError, match="unknown partner"):
        Publisher(settings, "no_such_partner")


class Subject(BaseModel):
    upn: str
    given_name: str
    date_of_birth: str


class Exclusion(BaseModel):
    envelope: dict[str, Any]
    subject: Subject
    school_urn: str
    exclusion_type: str
    start_date: str
    reason: str


def test_pydantic_models_are_published(settings: Settings) -> None:
    model = Exclusion(
        envelope={"occurred_at": "2025-03-03T09:00:00Z"},
        subject=Subject(upn="K870210015120", given_name="Jayden", date_of_birth="03/04/2011"),
        school_urn="109012",
        exclusion_type="suspension",
        start_date="2025-03-03",
        reason="Physical assault against pupil",
    )
    with Publisher(settings, "reading_schools") as pub:
        sent = pub.publish("education.exclusion", model)
    cache = SchemaCache.from_settings(settings)
    _, record = decode(_read(settings, sent.topic, {sent.event_id})[sent.event_id], cache)
    assert record["subject"]["date_of_birth"].isoformat() == "2011-04-03"
    assert record["reason"] == "PHYSICAL_ASSAULT_AGAINST_PUPIL"
    assert (
        record["envelope"]["source_partner"] == "reading_schools"
        and record["envelope"]["schema_version"] == 1
    )


def test_delivery_failures_reach_the_caller(settings: Settings) -> None:
    dead = settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})
    failures: list[tuple[str, str | None]] = []
    pub = Publisher(dead, "reading_housing", producer_config={"message.timeout.ms": 800, "log_level": 0})
    event = {
        "envelope": {"occurred_at": NOW},
        "case_reference": "HN/1",
        "duty": "RELIEF",
        "decision_date": NOW,
    }
    sent = pub.publish(
        "housing.homelessness_case", event, on_delivery=lambda eid, err: failures.append((eid, err))
    )
    with pytest.raises(DeliveryError) as info:
        pub.close(timeout=10)
    assert [eid for eid, _ in info.value.failures] == [sent.event_id]
    assert failures and failures[0][0] == sent.event_id and failures[0][1]


def _exclusion_row(event_id: str, **overrides: str) -> dict[str, str]:
    row = {
        "envelope.event_id": event_id,
        "envelope.occurred_at": "2025-03-03T09:00:00",
        "subject.upn": "K870210015120",
        "subject.given_name": "Jayden",
        "subject.date_of_birth": "03/04/2011",
        "subject.postcode": "rg12pd",
        "school_urn": "109012",
        "exclusion_type": "Suspension",
        "start_date": "2025-03-03",
        "sessions": "3",
        "reason": "OFFENSIVE_WEAPON",
    }
    return row | overrides


def test_cli_publishes_the_good_rows_and_reports_every_bad_one(settings: Settings, tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(8)]
    rows = [_exclusion_row(i) for i in ids[:5]]
    rows.insert(1, _exclusion_row(ids[5], start_date="31/02/2025", sessions="x"))
    rows.insert(4, _exclusion_row(ids[6], exclusion_type="Expelled"))
    rows.append(_exclusion_row(ids[7], school_urn=""))
    path = tmp_path / "exclusions.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    result = _cli(
        settings, "publish", "--partner", "reading_schools", "--event-type", "education.exclusion", str(path)
    )
    assert result.returncode == 1, result.stderr
    assert "published: 5, rejected: 3" in result.stdout
    with rejections_path(path).open() as fh:
        report = [(r["row"], r["field"]) for r in csv.DictReader(fh)]
    assert report == [("3", "start_date"), ("3", "sessions"), ("6", "exclusion_type"), ("9", "school_urn")]
    topic = topics.raw("reading_schools", "education.exclusion")
    assert set(_read(settings, topic, set(ids))) == set(ids[:5])


def test_cli_applies_a_column_mapping(settings: Settings, tmp_path: Path) -> None:
    for name in (
        "education.exclusion.csv",
        "education.exclusion.mapping.yaml",
        "police.crime_recorded.jsonl",
    ):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    csv_path, mapping = tmp_path / "education.exclusion.csv", tmp_path / "education.exclusion.mapping.yaml"
    result = _cli(
        settings,
        *("publish", "--partner", "reading_schools", "--event-type", "education.exclusion"),
        *("--mapping", str(mapping), str(csv_path)),
    )
    assert result.returncode == 1 and "published: 7, rejected: 3" in result.stdout, result.stderr
    with rejections_path(csv_path).open() as fh:
        assert sorted({int(r["row"]) for r in csv.DictReader(fh)}) == [6, 9, 11]
    jsonl = tmp_path / "police.crime_recorded.jsonl"
    result = _cli(
        settings,
        "publish",
        "--partner",
        "thames_valley_police",
        "--event-type",
        "police.crime_recorded",
        str(jsonl),
    )
    assert "published: 2, rejected: 1" in result.stdout, result.stderr
    refused = _cli(
        settings,
        "publish",
        "--partner",
        "reading_schools",
        "--event-type",
        "police.crime_recorded",
        str(jsonl),
    )
    assert refused.returncode == 1 and "does not publish police.crime_recorded" in refused.stderr


def test_simulator_run_publishes_what_the_truth_says(settings: Settings, tmp_path: Path) -> None:
    sim = Simulation(33, 300, now=NOW)
    truth = tmp_path / "truth.jsonl"
    result = run(settings, rate=0, events=80, simulation=sim, truth_path=truth)
    assert result.published == 80 and result.failed == 0
    assert sum(result.by_event_type.values()) == 80
    rows = truth.read_text().splitlines()
    assert len(rows) == 300
    crimes = result.by_event_type["police.crime_recorded"]
    topic = topics.raw("thames_valley_police", "police.crime_recorded")
    truth_ids = {eid for r in sim.truth() for eid in r["event_ids"]}
    assert crimes and len(_read(settings, topic, truth_ids)) == crimes


def _publish_file(settings: Settings, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli(
        settings,
        *("publish", "--partner", "reading_schools", "--event-type", "education.exclusion"),
        *extra,
        str(path),
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command's error: exit status 1, one line on stderr, no traceback, nothing published."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "published:" not in result.stdout
    return lines[0]


def _csv_text(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_cli_reads_a_windows_1252_extract_when_told_its_encoding(settings: Settings, tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(2)]
    rows = [_exclusion_row(ids[0]), _exclusion_row(ids[1], **{"subject.given_name": "Zoë"})]
    path = tmp_path / "exclusions.csv"
    path.write_bytes(_csv_text(rows).encode("cp1252"))

    line = _one_line(_publish_file(settings, path))
    assert line == (
        f"error: {path}: line 3 is not valid utf-8 (byte 0xeb): give the file's encoding, "
        "e.g. --encoding cp1252 for a spreadsheet saved on Windows"
    )
    result = _publish_file(settings, path, "--encoding", "cp1252")
    assert result.returncode == 0 and "published: 2, rejected: 0" in result.stdout, result.stderr
    topic = topics.raw("reading_schools", "education.exclusion")
    cache = SchemaCache.from_settings(settings)
    names = {decode(v, cache)[1]["subject"]["given_name"] for v in _read(settings, topic, set(ids)).values()}
    assert names == {"Jayden", "Zoë"}


def test_cli_names_the_line_of_a_quote_that_is_never_closed(settings: Settings, tmp_path: Path) -> None:
    rows = [_exclusion_row(str(uuid.uuid4())) for _ in range(6)]
    text = _csv_text(rows).splitlines()
    text[2] = text[2].replace("Jayden", '"Jayden', 1)  # the second row opens a quote it never closes
    path = tmp_path / "exclusions.csv"
    path.write_text("\n".join(text) + "\n")

    line = _one_line(_publish_file(settings, path))
    assert line == (
        f'error: {path}: line 3: a quoted cell is never closed (a " with no matching "), so the rest '
        "of the file would read as one cell: fix the quoting and publish again"
    )
    assert not rejections_path(path).exists()


@pytest.mark.parametrize(
    ("content", "what"),
    [
        ("", "the file is empty (no header, no rows)"),
        ("subject.upn,school_urn\n", "has a header but no rows"),
    ],
)
def test_cli_refuses_an_extract_with_no_rows(
    settings: Settings, tmp_path: Path, content: str, what: str
) -> None:
    path = tmp_path / "exclusions.csv"
    path.write_text(content)
    line = _one_line(_publish_file(settings, path))
    suffix = "" if content == "" else ": nothing to publish"
    assert line == f"error: {path}: {what}{suffix}"
