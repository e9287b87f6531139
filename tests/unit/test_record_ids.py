"""Event ids from record keys: one row, one id, whoever publishes it and however its cells are written."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.avro.catalogue import load_catalogue
from streams.errors import ConfigurationError
from streams.publish.prepare import prepare
from streams.publish.record_ids import RecordIds
from streams.publish.simulate import Simulation
from streams.settings import ROOT

CAT = load_catalogue(ROOT / "schemas")
IDS = RecordIds(b"k" * 32)
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _exclusion(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "envelope": {"occurred_at": "2025-03-03T09:00:00"},
        "subject": {"upn": "K870210015120", "given_name": "Jayden"},
        "school_urn": "109012",
        "exclusion_type": "Suspension",
        "start_date": "2025-03-03",
        "sessions": "3",
        "reason": "OFFENSIVE_WEAPON",
    }
    return row | overrides


def _id(event: dict[str, Any], partner: str = "reading_schools", ids: RecordIds = IDS) -> tuple[str, str]:
    p = prepare(CAT, partner, "education.exclusion", event, ids=ids)
    return p.record["envelope"]["event_id"], p.id_source


def test_the_same_record_gets_the_same_id_however_its_cells_are_written() -> None:
    first, source = _id(_exclusion())
    assert source == "record_key" and uuid.UUID(first).version == 8
    again, _ = _id(_exclusion(start_date="03/03/2025", subject={"upn": " k870210015120 "}))
    assert again == first
    # content outside the record key is not identity: a corrected reason is the same record
    assert _id(_exclusion(reason="OTHER", sessions="5"))[0] == first
    assert _id(_exclusion(start_date="2025-03-04"))[0] != first
    assert _id(_exclusion(), partner="oxfordshire_schools")[0] != first
    assert _id(_exclusion(), ids=RecordIds(b"x" * 32))[0] != first  # keyed: no key, no confirming guesses


def test_a_given_event_id_wins_and_an_incomplete_key_gets_a_random_id() -> None:
    given = str(uuid.uuid4())
    assert _id(_exclusion(envelope={"occurred_at": NOW, "event_id": given})) == (given, "given")
    one, source = _id(_exclusion(subject=None))
    assert source == "random" and one != _id(_exclusion(subject=None))[0]


def test_the_key_file_is_created_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "record-id.key"
    first = RecordIds.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert _id(_exclusion(), ids=first) == _id(_exclusion(), ids=RecordIds.load_or_create(path))
    path.write_text("not base64!\n")
    with pytest.raises(ConfigurationError, match=r"record-id\.key: not a record id key"):
        RecordIds.load_or_create(path)


def test_the_simulator_derives_the_ids_the_publisher_would() -> None:
    sim = Simulation(5, 400, now=NOW, record_ids=IDS)
    generated = list(sim.events(400))
    assert len({e["envelope"]["event_id"] for _, _, e in generated}) == 400
    for partner, event_type, event in generated:
        body = dict(event, envelope={k: v for k, v in event["envelope"].items() if k != "event_id"})
        p = prepare(CAT, partner, event_type, body, ids=IDS)
        assert p.record["envelope"]["event_id"] == event["envelope"]["event_id"], event_type
        assert p.id_source == "record_key", event_type


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "record_key: missing"),
        (["no_such_field"], "'no_such_field' is not a field"),
        (["subject"], "'subject' must be a single value"),
        (["envelope.recorded_at"], "only occurred_at identifies a record"),
        ([], "non-empty list"),
    ],
)
def test_record_keys_are_checked_at_load_with_the_file_named(
    tmp_path: Path, key: list[str] | None, message: str
) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    file = schemas / "education.exclusion.avsc"
    raw = json.loads(file.read_text())
    if key is None:
        del raw["record_key"]
    else:
        raw["record_key"] = key
    file.write_text(json.dumps(raw))
    with pytest.raises(ConfigurationError, match=message) as info:
        load_catalogue(schemas)
    assert str(info.value).startswith(f"{file}: record_key")
