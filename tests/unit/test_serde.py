"""Confluent wire format and the writer-schema cache, without a registry (a stub counts fetches)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastavro import parse_schema

from streams.avro.catalogue import load_catalogue
from streams.avro.serde import (
    RegistryUnavailable,
    SchemaCache,
    SerdeError,
    UnknownSchema,
    decode,
    decode_header,
    encode,
)
from streams.publish.publisher import prepare_event
from streams.settings import ROOT
from tests.support.registry import MemoryRegistry


@dataclass
class _Schema:
    schema_str: str


class StubRegistry:
    def __init__(self, schemas: dict[int, str]) -> None:
        self.schemas = schemas
        self.calls = 0

    def get_schema(self, schema_id: int) -> _Schema:
        self.calls += 1
        if schema_id not in self.schemas:
            raise LookupError(f"Schema {schema_id} not found (HTTP 404, code 40403)")
        return _Schema(self.schemas[schema_id])


@pytest.fixture(scope="module")
def exclusion() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    et = load_catalogue(ROOT / "schemas").event_type("education.exclusion")
    record = prepare_event(
        load_catalogue(ROOT / "schemas"),
        "reading_schools",
        "education.exclusion",
        {
            "envelope": {"occurred_at": datetime(2025, 3, 3, 9, tzinfo=UTC)},
            "subject": {"upn": "K870210015120", "date_of_birth": date(2011, 4, 3)},
            "school_urn": "109012",
            "exclusion_type": "SUSPENSION",
            "start_date": date(2025, 3, 3),
            "reason": "OFFENSIVE_WEAPON",
        },
    )
    return et.parsed, et.schema, record


def test_encode_then_decode_round_trips_with_header(
    exclusion: tuple[Any, dict[str, Any], dict[str, Any]],
) -> None:
    parsed, schema, record = exclusion
    data = encode(parsed, 42, record)
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == 42
    registry = StubRegistry({42: json.dumps(schema)})
    schema_id, decoded = decode(data, SchemaCache(registry))
    assert schema_id == 42
    assert decoded["envelope"]["event_id"] == record["envelope"]["event_id"]
    assert isinstance(decoded["envelope"]["event_id"], str)  # contract: uuid as str
    assert decoded["envelope"]["occurred_at"] == datetime(2025, 3, 3, 9, tzinfo=UTC)
    assert decoded["subject"]["date_of_birth"] == date(2011, 4, 3)
    assert decoded["reason"] == "OFFENSIVE_WEAPON"


def test_schema_is_fetched_once_per_id(exclusion: tuple[Any, dict[str, Any], dict[str, Any]]) -> None:
    parsed, schema, record = exclusion
    registry = StubRegistry({7: json.dumps(schema)})
    cache = SchemaCache(registry)
    data = encode(parsed, 7, record)
    for _ in range(100):
        decode(data, cache)
    assert registry.calls == 1
    assert 7 in cache
    assert cache.schema(7)["fields"][1]["name"] == "subject"  # JSON kept, custom attributes included
    assert "pii" in json.dumps(cache.schema(7))


def test_header_errors_are_clear() -> None:
    with pytest.raises(SerdeError, match="too short"):
        decode_header(b"\x00\x00")
    with pytest.raises(SerdeError, match="unknown magic byte 1"):
        decode_header(b"\x01\x00\x00\x00\x07payload")
    schema_id, payload = decode_header(b"\x00\x00\x00\x01\x00abc")
    assert schema_id == 256 and bytes(payload) == b"abc"


def test_unknown_schema_id_and_corrupt_payload_raise_serde_errors(
    exclusion: tuple[Any, dict[str, Any], dict[str, Any]],
) -> None:
    parsed, schema, record = exclusion
    cache = SchemaCache(StubRegistry({1: json.dumps(schema)}))
    with pytest.raises(UnknownSchema, match="schema id 9 is not in the registry"):
        decode(encode(parsed, 9, record), cache)
    truncated = encode(parsed, 1, record)[:20]
    with pytest.raises(SerdeError, match="cannot decode payload with schema id 1"):
        decode(truncated, cache)


def test_reader_schema_resolves_an_older_writer(
    exclusion: tuple[Any, dict[str, Any], dict[str, Any]],
) -> None:
    parsed, schema, record = exclusion
    newer = json.loads(json.dumps(schema))
    newer["fields"].append(
        {"name": "notes", "type": ["null", "string"], "default": None, "doc": "New field."}
    )
    cache = SchemaCache(StubRegistry({3: json.dumps(schema)}))
    _, decoded = decode(encode(parsed, 3, record), cache, reader_schema=parse_schema(newer))
    assert decoded["notes"] is None and decoded["school_urn"] == "109012"


def test_a_registry_that_does_not_answer_is_not_the_records_fault(
    exclusion: tuple[Any, dict[str, Any], dict[str, Any]],
) -> None:
    """An outage raises RegistryUnavailable, which no stage may dead-letter as a SerdeError."""
    parsed, schema, record = exclusion
    registry = MemoryRegistry()
    schema_id = registry.add(schema)
    cache = SchemaCache(registry)
    registry.down = True
    with pytest.raises(RegistryUnavailable) as exc:
        decode(encode(parsed, schema_id, record), cache)
    assert not isinstance(exc.value, SerdeError)
    registry.down = False  # the outage is not remembered: the next read asks again
    assert decode(encode(parsed, schema_id, record), cache)[1]["school_urn"] == "109012"


def test_a_non_canonical_event_id_is_written_canonically_and_a_bad_one_refused(
    exclusion: tuple[Any, dict[str, Any], dict[str, Any]],
) -> None:
    _, schema, record = exclusion
    registry = MemoryRegistry()
    cache = SchemaCache(registry)
    schema_id = registry.add(schema)
    event_id = str(record["envelope"]["event_id"])
    upper = {**record, "envelope": {**record["envelope"], "event_id": event_id.upper()}}
    text_schema = json.loads(json.dumps(schema))
    for field in text_schema["fields"]:  # a writer that does not check its uuids
        if field["name"] == "envelope":
            for inner in field["type"]["fields"]:
                if inner["name"] == "event_id":
                    inner["type"] = "string"
    writer = parse_schema(text_schema)
    _, decoded = decode(encode(writer, schema_id, upper), cache)
    assert decoded["envelope"]["event_id"] == event_id.lower()
    bad = {**record, "envelope": {**record["envelope"], "event_id": "not-a-uuid"}}
    with pytest.raises(SerdeError, match=r"envelope\.event_id is not a UUID"):
        decode(encode(writer, schema_id, bad), cache)
