"""Which raw records the enforcer may trust: decoded through the one codec and checked, or refused.

A record is refused whole (dead-lettered, shared with nobody) when its topic is not a raw topic of
a catalogued event type, its bytes do not decode, its schema is unknown or of another event type,
its envelope claims another partner or type, or a formatted field holds something else (a format
is what lets a string be shared: unchecked, it could be free text). A registry that does not
answer is not the record's fault: `RegistryUnavailable` goes up for the batch to be retried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streams import deadletter as dl
from streams import topics
from streams.avro.catalogue import Catalogue
from streams.avro.formats import checker_for
from streams.avro.serde import SchemaCache, SerdeError, UnknownSchema, decode, decode_header, fullname
from streams.deadletter import RawRecord


@dataclass(slots=True)
class Admitted:
    """A trusted event: the topic's partner and event type, the decoded event, its canonical id."""

    partner: str
    event_type: str
    event: dict[str, Any]
    event_id: str


@dataclass(slots=True)
class Refused:
    """Why a record is dead-lettered: a `deadletter.REASONS` code and a detail."""

    reason: str
    detail: str


class Admission:
    """Decodes and checks raw records; remembers per (schema id, event type) how to read them."""

    def __init__(self, catalogue: Catalogue, schemas: SchemaCache) -> None:
        self.catalogue = catalogue
        self.schemas = schemas
        self._topics: dict[str, tuple[str, str] | None] = {}
        self._readers: dict[tuple[int, str], Any] = {}  # reader schema, None, or a Refused

    def admit(self, rec: RawRecord) -> Admitted | Refused:
        parsed_topic = self._topic(rec.topic)
        if parsed_topic is None:
            return Refused(dl.VALIDATION, f"{rec.topic} is not a raw topic")
        partner, event_type = parsed_topic
        if event_type not in self.catalogue.event_types:
            return Refused(dl.SCHEMA_MISMATCH, f"{event_type} is not in the schema catalogue")
        try:
            schema_id, _ = decode_header(rec.value)
        except SerdeError as exc:
            return Refused(dl.DECODE_ERROR, str(exc))
        reader = self._reader(schema_id, event_type)
        if isinstance(reader, Refused):
            return reader
        try:
            _, event = decode(rec.value, self.schemas, reader)
        except UnknownSchema as exc:
            return Refused(dl.UNKNOWN_SCHEMA, str(exc))
        except SerdeError as exc:
            return Refused(dl.DECODE_ERROR, str(exc))
        if not isinstance(event, dict):
            return Refused(dl.DECODE_ERROR, "payload is not a record")
        envelope = event.get("envelope") or {}
        claimed = envelope.get("source_partner")
        if claimed != partner:
            return Refused(dl.SPOOFED_PARTNER, f"source_partner {claimed!r} on {partner}'s topic")
        if envelope.get("event_type") != event_type:
            return Refused(dl.SCHEMA_MISMATCH, f"envelope.event_type differs from topic ({event_type})")
        bad_format = checker_for(self.catalogue.event_types[event_type])(event)
        if bad_format:
            return Refused(dl.VALIDATION, "; ".join(f"{p}: {r}" for p, r in bad_format))
        return Admitted(partner, event_type, event, str(envelope.get("event_id")))

    def _topic(self, topic: str) -> tuple[str, str] | None:
        try:
            return self._topics[topic]
        except KeyError:
            try:
                parsed: tuple[str, str] | None = topics.parse_raw(topic)
            except ValueError:
                parsed = None
            self._topics[topic] = parsed
            return parsed

    def _reader(self, schema_id: int, event_type: str) -> Any:
        """The reader schema for this writer (None: the catalogue's own), or why it is refused."""
        key = (schema_id, event_type)
        if key in self._readers:
            return self._readers[key]
        try:
            writer = self.schemas.schema(schema_id)
        except UnknownSchema as exc:
            return Refused(dl.UNKNOWN_SCHEMA, str(exc))  # not kept: the cache asks again after a while
        expected = self.catalogue.event_type(event_type)
        if fullname(writer) != fullname(expected.schema):
            reader: Any = Refused(
                dl.SCHEMA_MISMATCH, f"schema id {schema_id} is {fullname(writer)}, topic carries {event_type}"
            )
        elif json.dumps(writer, sort_keys=True) == json.dumps(expected.schema, sort_keys=True):
            reader = None  # the common case: no resolution
        else:
            reader = expected.parsed  # an older or newer writer, resolved to the catalogue's schema
        self._readers[key] = reader
        return reader
