"""The publish ledger: which fields of a re-published row changed, kept as keyed digests only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.avro.catalogue import load_catalogue
from streams.publish.ledger import ENVELOPE_TIME, PublishLedger, changed_fields, field_values, jsonable
from streams.publish.prepare import prepare_event
from streams.publish.record_ids import RecordIds
from streams.settings import ROOT

CAT = load_catalogue(ROOT / "schemas")
IDS = RecordIds(b"k" * 32)


def _record(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "envelope": {"occurred_at": "2026-03-02T09:00:00"},
        "subject": {"upn": "K870210015120", "given_name": "Jayden"},
        "school_urn": "109012",
        "exclusion_type": "SUSPENSION",
        "start_date": "2026-03-02",
        "sessions": 3,
        "reason": "BULLYING",
    }
    return prepare_event(CAT, "reading_schools", "education.exclusion", event | overrides, ids=IDS)


def test_the_changed_fields_are_named_and_the_envelope_is_watched(tmp_path: Path) -> None:
    ledger = PublishLedger.for_partner(tmp_path, "reading_schools", IDS)
    first = ledger.digests(_record())
    assert changed_fields(first, ledger.digests(_record())) == []
    later = _record(reason="OFFENSIVE_WEAPON", sessions=5, envelope={"occurred_at": "2026-03-02T09:00:00"})
    assert changed_fields(first, ledger.digests(later)) == ["sessions", "reason"]
    moved = _record(envelope={"occurred_at": "2026-03-02T10:00:00"})
    assert changed_fields(first, ledger.digests(moved)) == [ENVELOPE_TIME]
    # A subject that became null is one correction, not one per identifier it had.
    assert changed_fields(first, ledger.digests(_record(subject=None))) == ["subject"]
    assert set(changed_fields(ledger.digests(_record(subject=None)), first)) >= {"subject.upn"}


def test_field_values_and_their_json_form() -> None:
    values = field_values(_record())
    assert values["subject.upn"] == "K870210015120" and "envelope.event_id" not in values
    assert jsonable(values["start_date"]) == "2026-03-02"
    assert jsonable(datetime(2026, 3, 2, 9, tzinfo=UTC)) == "2026-03-02T09:00:00+00:00"


def test_the_ledger_keeps_delivered_versions_as_keyed_digests(tmp_path: Path) -> None:
    ledger = PublishLedger.for_partner(tmp_path, "reading_schools", IDS)
    record = _record()
    event_id = record["envelope"]["event_id"]
    digests = ledger.digests(record)
    ledger.put(event_id, "education.exclusion", digests)
    assert ledger.get(event_id) == digests  # this run sees what it handed to the producer
    ledger.put("other", "education.exclusion", digests)
    ledger.forget_pending("other")  # its delivery failed: the next run sends it again
    ledger.close()

    again = PublishLedger.for_partner(tmp_path, "reading_schools", IDS)
    assert again.get(event_id) == digests and again.get("other") is None
    text = (tmp_path / "published" / "reading_schools.sqlite").read_bytes()
    assert b"K870210015120" not in text and b"BULLYING" not in text
    other_key = PublishLedger.for_partner(tmp_path / "b", "reading_schools", RecordIds(b"x" * 32))
    assert other_key.digests(record) != digests
    assert json.dumps(sorted(digests)) == json.dumps(sorted(field_values(record)))
