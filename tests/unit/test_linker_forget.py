"""An erasure's forget record makes the linker drop the person: later records found a new person."""

from __future__ import annotations

import json

from agents.linker import LinkerStage
from streams.deadletter import Output, RawRecord
from streams.linkage.linker import Linker


def _record(offset: int, doc: dict[str, object]) -> RawRecord:
    return RawRecord("link.identifiers", 0, offset, None, json.dumps(doc).encode())


def _fact(event_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "subject_index": 0,
        "event_type": "education.exclusion",
        "source_partner": "reading_schools",
        "occurred_at": "2026-03-01T10:00:00+00:00",
        "role": None,
        "tokens": {"upn": "k1.sameupn"},
        "invalid": [],
        "factors": ["school_exclusion"],
        "area": {"lsoa": None, "district": "RG1"},
    }


def test_forget_record_erases_the_cluster_and_is_not_dead_lettered() -> None:
    sent: list[Output] = []
    stage = LinkerStage(sent.extend, Linker, vault=None)
    stage.process([_record(0, _fact("e1"))])
    # the `p.` token stays inside the bus: it is the key of the linker's own changelog
    person = next(o.key.decode() for o in sent if o.topic == "link.state" and o.value and o.key)
    assert person and stage.linker is not None and stage.linker.resolve(person) == person

    sent.clear()
    stage.process([_record(1, {"kind": "forget", "person_tokens": [person], "request_id": "r1"})])
    assert not [o for o in sent if o.topic.startswith("dlq.")]
    assert [o for o in sent if o.topic == "link.state" and o.key == person.encode() and o.value is None]
    assert stage.linker.resolve(person) is None


def test_forget_record_without_tokens_is_dead_lettered() -> None:
    sent: list[Output] = []
    stage = LinkerStage(sent.extend, Linker, vault=None)
    stage.process([_record(0, {"kind": "forget", "person_tokens": "p.x"})])
    assert [o for o in sent if o.topic == "dlq.linker"]
