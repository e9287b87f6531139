"""Confluent wire format on fastavro: magic byte 0, 4-byte big-endian schema id, Avro binary.

The enforcer decodes every raw event with `decode(data, cache)`: the writer schema is fetched from
the registry once per schema id and kept parsed, so the per-event cost is a header unpack and a
fastavro read. Values come back as fastavro gives them (aware `datetime`, `date`), except the
envelope's `event_id`, turned back into `str` as the contract says (fastavro returns `uuid.UUID`).
"""

from __future__ import annotations

import io
import json
import struct
import threading
import uuid
from typing import Any, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streams.errors import SharingBusError

__all__ = ["MAGIC", "SchemaCache", "SerdeError", "decode", "decode_header", "encode"]

MAGIC = 0
_HEADER = struct.Struct(">bI")


class SerdeError(SharingBusError):
    """Bytes are not a registry-framed Avro record, or their schema cannot be fetched or applied."""


class _Registry(Protocol):
    def get_schema(self, schema_id: int) -> Any: ...


def encode(parsed_schema: Any, schema_id: int, record: Any) -> bytes:
    """Frame `record` written with `parsed_schema` (from fastavro.parse_schema) under `schema_id`."""
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC, schema_id))
    schemaless_writer(buf, parsed_schema, record)
    return buf.getvalue()


def decode_header(data: bytes) -> tuple[int, memoryview]:
    """(schema_id, Avro payload) of a framed message; SerdeError when the frame is wrong."""
    if data is None or len(data) < _HEADER.size:
        size = 0 if data is None else len(data)
        raise SerdeError(f"message too short for the registry wire format ({size} bytes, need > 5)")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SerdeError(f"unknown magic byte {magic} (expected {MAGIC}: Confluent wire format)")
    return schema_id, memoryview(data)[_HEADER.size :]


class SchemaCache:
    """Writer schemas by id, fetched from the registry once and kept parsed (thread-safe).

    `registry` is a confluent-kafka `SchemaRegistryClient` (or anything with `get_schema(id)`
    returning an object with `schema_str`); `SchemaCache.from_settings(settings)` builds one.
    """

    def __init__(self, registry: _Registry) -> None:
        self._registry = registry
        self._parsed: dict[int, Any] = {}
        self._json: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> SchemaCache:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(SchemaRegistryClient(settings.registry_config()))

    def parsed(self, schema_id: int) -> Any:
        """fastavro-parsed writer schema for `schema_id`."""
        try:
            return self._parsed[schema_id]
        except KeyError:
            return self._fetch(schema_id)[0]

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The writer schema's JSON, custom attributes (pii, identifier, ...) included."""
        try:
            return self._json[schema_id]
        except KeyError:
            return self._fetch(schema_id)[1]

    get = parsed

    def __contains__(self, schema_id: object) -> bool:
        return schema_id in self._parsed

    def _fetch(self, schema_id: int) -> tuple[Any, dict[str, Any]]:
        with self._lock:
            if schema_id in self._parsed:
                return self._parsed[schema_id], self._json[schema_id]
            try:
                schema_str = self._registry.get_schema(schema_id).schema_str
            except Exception as exc:  # registry errors carry HTTP status and code in their text
                raise SerdeError(f"cannot fetch schema id {schema_id} from the registry: {exc}") from exc
            try:
                as_json = json.loads(schema_str)
                parsed = parse_schema(as_json)
            except Exception as exc:
                raise SerdeError(f"schema id {schema_id} is not a valid Avro schema: {exc}") from exc
            self._json[schema_id] = as_json
            self._parsed[schema_id] = parsed
            return parsed, as_json


def decode(data: bytes, cache: SchemaCache, reader_schema: Any = None) -> tuple[int, Any]:
    """(schema_id, record) of a framed message; `reader_schema` (parsed) resolves older writers."""
    schema_id, payload = decode_header(data)
    writer = cache.parsed(schema_id)
    try:
        record = schemaless_reader(io.BytesIO(payload), writer, reader_schema)
    except Exception as exc:  # truncated or mismatched payloads raise EOFError, IndexError, ...
        raise SerdeError(f"cannot decode payload with schema id {schema_id}: {exc!r}") from exc
    envelope = record.get("envelope") if isinstance(record, dict) else None
    if isinstance(envelope, dict) and isinstance(envelope.get("event_id"), uuid.UUID):
        envelope["event_id"] = str(envelope["event_id"])
    return schema_id, record
