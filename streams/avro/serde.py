"""The bus's one Avro codec: Confluent wire format on fastavro, and the one schema cache.

Wire format: magic byte 0, 4-byte big-endian schema id, Avro binary. `decode(data, cache)` gives a
record as fastavro gives it (aware `datetime`, `date`), except the envelope's `event_id`, which the
contract says is canonical UUID text.

One error contract for every caller:
- `SerdeError`: the bytes are at fault (not framed, payload does not decode, schema id unknown to
  the registry: `UnknownSchema`). A stage dead-letters the record.
- `RegistryUnavailable`: the registry did not answer. Not the record's fault: a stage waits and
  tries again, never dead-letters.
"""

from __future__ import annotations

import copy
import io
import json
import re
import struct
import threading
import time
import uuid
from typing import Any, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streams import metrics
from streams.errors import BrokerError, SharingBusError

__all__ = [
    "MAGIC",
    "RegistryUnavailable",
    "SchemaCache",
    "SerdeError",
    "UnknownSchema",
    "decode",
    "decode_header",
    "encode",
]

MAGIC = 0
_HEADER = struct.Struct(">bI")

# An id the registry does not know is asked about again only after this long, so a flood of records
# carrying a bogus id (poison, or a producer pointed at another registry) is not also a flood of
# registry requests on a hot path. Ids are assigned before anything is written with them, so the
# wait never delays a genuine schema; a registry that lost its schemas and has them re-registered
# is seen again within this time.
UNKNOWN_ID_TTL_S = 30.0
UNKNOWN_IDS_MAX = 10_000  # remembered misses; the oldest is forgotten first

# What str(uuid.UUID(x)) gives: the only spelling of an event id the bus passes on.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class SerdeError(SharingBusError):
    """Bytes are not a registry-framed Avro record, or their schema cannot be applied to them."""


class UnknownSchema(SerdeError):
    """The registry does not know the schema id (or it is not an Avro record schema)."""


class RegistryUnavailable(BrokerError):
    """The schema registry did not answer: not the record's fault, so wait and try again."""


class _Registry(Protocol):
    def get_schema(self, schema_id: int) -> Any: ...


def encode(parsed_schema: Any, schema_id: int, record: Any) -> bytes:
    """Frame `record` written with `parsed_schema` (from fastavro.parse_schema) under `schema_id`."""
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC, schema_id))
    schemaless_writer(buf, parsed_schema, record)
    return buf.getvalue()


def decode_header(data: bytes | None) -> tuple[int, memoryview]:
    """(schema_id, Avro payload) of a framed message; SerdeError when the frame is wrong."""
    if data is None or len(data) < _HEADER.size:
        size = 0 if data is None else len(data)
        raise SerdeError(f"message too short for the registry wire format ({size} bytes, need > 5)")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SerdeError(f"unknown magic byte {magic} (expected {MAGIC}: Confluent wire format)")
    return schema_id, memoryview(data)[_HEADER.size :]


def fullname(schema: dict[str, Any]) -> str:
    """The record's full name (`namespace.name`): what says which event type a schema is."""
    name = str(schema.get("name", ""))
    ns = schema.get("namespace")
    return name if "." in name or not ns else f"{ns}.{name}"


def _event_id_as_text(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with `envelope.event_id` read as plain text instead of a `uuid.UUID`.

    fastavro's uuid logical type builds a UUID object that every reader turns straight back into
    text; `decode` checks the text is canonical instead. Schemas
    without such a field pass through.
    """
    if not isinstance(schema.get("fields"), list):
        return schema
    out = copy.deepcopy(schema)
    for field in out["fields"]:
        envelope = field.get("type") if field.get("name") == "envelope" else None
        if isinstance(envelope, dict) and isinstance(envelope.get("fields"), list):
            for inner in envelope["fields"]:
                kind = inner.get("type")
                if (
                    inner.get("name") == "event_id"
                    and isinstance(kind, dict)
                    and kind.get("logicalType") == "uuid"
                ):
                    inner["type"] = "string"
    return out


class SchemaCache:
    """Writer schemas by id and output-schema ids by subject, from the registry once (thread-safe).

    `registry` is a confluent-kafka `SchemaRegistryClient` (or anything with `get_schema(id)`
    returning an object with `schema_str`, and `register_schema`, `get_subjects` where used);
    `SchemaCache.from_settings(settings)` builds one. Ids the registry does not know are
    remembered for `unknown_ttl_s` (see UNKNOWN_ID_TTL_S).
    """

    def __init__(self, registry: _Registry, unknown_ttl_s: float = UNKNOWN_ID_TTL_S) -> None:
        self._registry = registry
        self._json: dict[int, dict[str, Any]] = {}
        self._parsed: dict[int, Any] = {}
        self._text_ids: dict[int, Any] = {}  # parsed with envelope.event_id as text
        self._ids: dict[tuple[str, str], int] = {}
        self._unknown: dict[int, tuple[float, str]] = {}  # id -> (when the registry said so, why)
        self._unknown_ttl_s = unknown_ttl_s
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> SchemaCache:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(SchemaRegistryClient(settings.registry_config()))

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The writer schema's JSON, custom attributes (pii, identifier, ...) included."""
        try:
            return self._json[schema_id]
        except KeyError:
            return self._fetch(schema_id)

    def parsed(self, schema_id: int) -> Any:
        """fastavro-parsed writer schema for `schema_id`."""
        try:
            return self._parsed[schema_id]
        except KeyError:
            self._fetch(schema_id)
            return self._parsed[schema_id]

    get = parsed

    def text_id_parsed(self, schema_id: int) -> Any:
        """Like `parsed`, with `envelope.event_id` read as text (`decode` checks it is canonical)."""
        try:
            return self._text_ids[schema_id]
        except KeyError:
            self._fetch(schema_id)
            return self._text_ids[schema_id]

    def __contains__(self, schema_id: object) -> bool:
        return schema_id in self._parsed

    def _fetch(self, schema_id: int) -> dict[str, Any]:
        with self._lock:
            if schema_id in self._json:
                return self._json[schema_id]
            missed = self._unknown.get(schema_id)
            if missed is not None:
                if time.monotonic() - missed[0] < self._unknown_ttl_s:
                    raise UnknownSchema(missed[1])
                del self._unknown[schema_id]
            try:
                schema_str = self._registry.get_schema(schema_id).schema_str
            except Exception as exc:  # registry errors carry their HTTP status
                status = getattr(exc, "http_status_code", None)
                metrics.REGISTRY_REQUESTS.labels(
                    operation="get_schema", status=metrics.registry_status(status)
                ).inc()
                if status == 404 or isinstance(exc, LookupError):
                    raise UnknownSchema(self._remember_unknown(schema_id, "is not in the registry")) from exc
                raise RegistryUnavailable(
                    f"schema id {schema_id}: the registry did not answer ({type(exc).__name__})"
                ) from exc
            metrics.REGISTRY_REQUESTS.labels(operation="get_schema", status="ok").inc()
            try:
                as_json = json.loads(schema_str or "null")
                if not isinstance(as_json, dict):
                    raise ValueError("not an Avro record schema")
                parsed = parse_schema(as_json)
                text_ids = parse_schema(_event_id_as_text(as_json))
            except Exception as exc:
                raise UnknownSchema(
                    self._remember_unknown(schema_id, f"is not a valid Avro schema: {exc}")
                ) from exc
            self._parsed[schema_id] = parsed
            self._text_ids[schema_id] = text_ids
            self._json[schema_id] = as_json
            return as_json

    def _remember_unknown(self, schema_id: int, why: str) -> str:
        message = f"schema id {schema_id} {why}"
        if len(self._unknown) >= UNKNOWN_IDS_MAX:
            del self._unknown[next(iter(self._unknown))]
        self._unknown[schema_id] = (time.monotonic(), message)
        return message

    def id_for(self, subject: str, schema: dict[str, Any]) -> int:
        """The registry id of `schema` under `subject`, registered the first time it is asked for."""
        from confluent_kafka.schema_registry import Schema

        text = json.dumps(schema, sort_keys=True)
        key = (subject, text)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        schema_id = int(self._registry.register_schema(subject, Schema(text, "AVRO")))  # type: ignore[attr-defined]
        metrics.REGISTRY_REQUESTS.labels(operation="register", status="ok").inc()
        self._ids[key] = schema_id
        return schema_id

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when the registry answers (used by /ready)."""
        started = time.monotonic()
        try:
            self._registry.get_subjects()  # type: ignore[attr-defined]
        except Exception:
            return False
        return time.monotonic() - started < timeout * 5


def decode(data: bytes | None, cache: SchemaCache, reader_schema: Any = None) -> tuple[int, Any]:
    """(schema_id, record) of a framed message; `reader_schema` (parsed) resolves older writers.

    Raises SerdeError (UnknownSchema for an id the registry does not know) or RegistryUnavailable.
    """
    schema_id, payload = decode_header(data)
    writer = cache.parsed(schema_id) if reader_schema is not None else cache.text_id_parsed(schema_id)
    try:
        record = schemaless_reader(io.BytesIO(payload), writer, reader_schema)
    except Exception as exc:  # truncated or mismatched payloads raise EOFError, IndexError, ...
        raise SerdeError(f"cannot decode payload with schema id {schema_id}: {exc!r}") from exc
    envelope = record.get("envelope") if isinstance(record, dict) else None
    if isinstance(envelope, dict) and "event_id" in envelope:
        raw = envelope["event_id"]
        if type(raw) is not str or not _CANONICAL_UUID.fullmatch(raw):
            try:  # a UUID object (a resolved reader), or text to write canonically
                envelope["event_id"] = str(raw if type(raw) is uuid.UUID else uuid.UUID(str(raw)))
            except ValueError:
                raise SerdeError("envelope.event_id is not a UUID") from None
    return schema_id, record
