"""The views' batch logic, apart from Faust: `link.person` records in, table writes and outputs out.

`ProfileStage` (`streams.views.profile_stage`) owns the partitioned person tables (profiles and
tombstones) and runs on the partition of each record's key; `AreaStage` (`streams.views.area_stage`)
owns the one global area table. Both read and write through a `Store` (a Faust table in the worker,
a dict in unit tests) and return the records to produce, so the agent decides when they are sent
and the logic can be tested without a broker. This module holds what both share: the topics, the
store, and the checks of a `link.person` record (a record that fails one is dead-lettered).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from streams import deadletter as dl
from streams import topics
from streams.deadletter import RawRecord
from streams.kafka import topology
from streams.views.profiles import (
    event_key,
    parse_time,
)

STAGE = "views"
AREA_PARTITION = 0

__all__ = [
    "AREA_PARTITION",
    "STAGE",
    "BadRecord",
    "MemoryStore",
    "Store",
    "ViewsTopics",
    "check_fact",
    "dumps",
    "event_hex",
    "parse_event_ids",
    "parse_record",
    "require_key",
    "text_field",
]


@dataclass(frozen=True)
class ViewsTopics:
    """Every topic the views agent reads or writes (tests pass their own names)."""

    link_person: str = topics.LINK_PERSON
    moves: str = topology.VIEWS_PROFILE_MOVES
    area_facts: str = topology.VIEWS_AREA_FACTS
    profiles: str = topics.VIEWS_PERSON_PROFILE
    areas: str = topics.VIEWS_AREA_COUNTS
    dlq: str = topics.dlq(STAGE)


class Store(Protocol):
    """The part of a table a stage needs; `put` with None deletes."""

    def get(self, key: str) -> Any: ...

    def put(self, partition: int, key: str, value: Any) -> None: ...


class MemoryStore:
    """A `Store` over a dict, remembering the partition of each write (unit tests, benchmarks)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.partitions: dict[str, int] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: Any) -> None:
        self.partitions[key] = partition
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


class BadRecord(ValueError):
    """A record that breaks the contract; `reason` is a fixed dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def parse_record(value: bytes | None) -> dict[str, Any]:
    try:
        doc = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRecord(dl.DECODE_ERROR, f"not JSON: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise BadRecord(dl.DECODE_ERROR, "not a JSON object")
    return doc


def text_field(doc: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = doc.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise BadRecord(dl.VALIDATION, f"{name} must be a non-empty string")
    return value


def parse_event_ids(doc: Mapping[str, Any]) -> list[str]:
    ids = doc.get("event_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise BadRecord(dl.VALIDATION, "event_ids must be a non-empty list of strings")
    return ids


def check_fact(doc: Mapping[str, Any]) -> None:
    text_field(doc, "event_id")
    if not isinstance(doc.get("subject_index", 0), int):
        raise BadRecord(dl.VALIDATION, "subject_index must be an integer")
    factors = doc.get("factors") or []
    if not isinstance(factors, list) or not all(isinstance(f, str) and f for f in factors):
        raise BadRecord(dl.VALIDATION, "factors must be a list of strings")
    area = doc.get("area")
    if area is not None and not isinstance(area, dict):
        raise BadRecord(dl.VALIDATION, "area must be an object or null")
    try:
        parse_time(doc.get("occurred_at"))
    except (TypeError, ValueError):
        raise BadRecord(dl.VALIDATION, "occurred_at must be an ISO timestamp") from None
    text_field(doc, "person_token", optional=True)


def event_hex(event_id: str) -> str:
    return f"{event_key(event_id):016x}"


def require_key(record: RawRecord, token: str) -> None:
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    if key != token:
        raise BadRecord(dl.VALIDATION, "record key is not the person token it changes (co-partitioning)")
