"""The records of the `_schemas` topic, in Confluent Schema Registry's JSON key/value format.

Keys are serialised with a fixed field order so that compaction keeps exactly the latest record of
each (subject, version) and each config; a null value is a tombstone (hard delete).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from streams.registry.avro import AVRO, Reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchemaRecord:
    """Version `version` of `subject` is schema `id` (soft-deleted when `deleted`)."""

    subject: str
    version: int
    id: int
    schema: str
    references: tuple[Reference, ...] = ()
    deleted: bool = False
    schema_type: str = AVRO


@dataclass(frozen=True)
class SchemaTombstone:
    """Version `version` of `subject` was deleted permanently."""

    subject: str
    version: int


@dataclass(frozen=True)
class ConfigRecord:
    """Compatibility level of `subject` (None: the global level); `level` None deletes it."""

    subject: str | None
    level: str | None


@dataclass(frozen=True)
class DeleteSubjectRecord:
    """Written by Confluent's registry on a soft subject delete: versions up to `version` are deleted."""

    subject: str
    version: int


Record = SchemaRecord | SchemaTombstone | ConfigRecord | DeleteSubjectRecord


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def encode(record: Record) -> tuple[bytes, bytes | None]:
    """Kafka (key, value) of a record."""
    if isinstance(record, (SchemaRecord, SchemaTombstone)):
        key = _dumps({"keytype": "SCHEMA", "subject": record.subject, "version": record.version, "magic": 1})
        if isinstance(record, SchemaTombstone):
            return key, None
        value: dict[str, Any] = {
            "subject": record.subject,
            "version": record.version,
            "id": record.id,
            "schemaType": record.schema_type,
            "references": [r.to_json() for r in record.references],
            "schema": record.schema,
            "deleted": record.deleted,
        }
        return key, _dumps(value)
    if isinstance(record, ConfigRecord):
        key = _dumps({"keytype": "CONFIG", "subject": record.subject, "magic": 0})
        return key, None if record.level is None else _dumps({"compatibilityLevel": record.level})
    key = _dumps({"keytype": "DELETE_SUBJECT", "subject": record.subject, "magic": 0})
    return key, _dumps({"subject": record.subject, "version": record.version})


def decode(key: bytes | None, value: bytes | None) -> Record | None:
    """The record a Kafka message holds, or None for key types this registry does not use."""
    if key is None:
        return None
    try:
        k = json.loads(key)
        v = json.loads(value) if value is not None else None
        keytype = k.get("keytype")
        if keytype == "SCHEMA":
            if v is None:
                return SchemaTombstone(k["subject"], int(k["version"]))
            return SchemaRecord(
                subject=v["subject"],
                version=int(v["version"]),
                id=int(v["id"]),
                schema=v["schema"],
                references=tuple(Reference.from_json(r) for r in v.get("references") or []),
                deleted=bool(v.get("deleted", False)),
                schema_type=v.get("schemaType") or AVRO,
            )
        if keytype == "CONFIG":
            level = None if v is None else v.get("compatibilityLevel")
            return ConfigRecord(k.get("subject"), level)
        if keytype == "DELETE_SUBJECT" and v is not None:
            return DeleteSubjectRecord(v["subject"], int(v["version"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("skipping malformed _schemas record %r: %s", key[:200], exc)
    return None
