"""Dead letters: the original bytes, key and headers, plus why, so nothing is ever silently dropped.

Dead-letter topics hold raw data and are protected like raw topics (see `streams.kafka.acls`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from streams import topics

Headers = list[tuple[str, bytes]]

# Short, fixed reason codes: they are metric labels, so never free text. REASONS is the one list.
DECODE_ERROR = "decode_error"
UNKNOWN_SCHEMA = "unknown_schema"
SCHEMA_MISMATCH = "schema_mismatch"
SPOOFED_PARTNER = "spoofed_partner"
VALIDATION = "validation"
PLAN_ERROR = "plan_error"
INTERNAL = "internal_error"
REASONS: Final[dict[str, str]] = {
    DECODE_ERROR: "bytes are not registry-framed Avro, or not the record the stage reads",
    UNKNOWN_SCHEMA: "schema id not in the registry",
    SCHEMA_MISMATCH: "the registered schema or envelope is not the topic's event type",
    SPOOFED_PARTNER: "envelope.source_partner differs from the topic's partner",
    VALIDATION: "the record failed validation (topic name, formats, contract fields)",
    PLAN_ERROR: "a plan could not produce a recipient's output",
    INTERNAL: "anything else (a bug): look at the logs",
}

# Below librdkafka's default message.max.bytes (1,000,000), with room for key and headers.
MAX_RECORD_BYTES = 900_000


@dataclass(slots=True)
class Output:
    """One record to produce; the enforcer returns these and a producer sends them."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None


@dataclass(slots=True)
class RawRecord:
    """What a consumer read: enough to process it and to dead-letter it faithfully."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)

    @classmethod
    def from_event(cls, event: Any) -> RawRecord:
        """From a Faust event (its `message`: topic, partition, offset, key, value, headers)."""
        msg = event.message
        headers = msg.headers or []
        if isinstance(headers, dict):
            headers = list(headers.items())
        return cls(msg.topic, msg.partition, msg.offset, msg.key, msg.value, list(headers))

    @classmethod
    def from_message(cls, m: Any) -> RawRecord:
        """From a confluent-kafka `Message`."""
        headers = m.headers() or []
        if isinstance(headers, dict):
            headers = list(headers.items())
        return cls(m.topic() or "", m.partition() or 0, m.offset() or 0, m.key(), m.value(), list(headers))


def dead_letter(record: RawRecord, stage: str, reason: str, detail: str) -> Output:
    """The dead-letter record for `record`: original key, value and headers, plus the reason."""
    detail = detail.replace("\n", " ")[:500]
    headers: Headers = list(record.headers or [])
    headers += [
        ("sharingbus.dlq.stage", stage.encode()),
        ("sharingbus.dlq.reason", reason.encode()),
        ("sharingbus.dlq.detail", detail.encode("utf-8", "replace")),
        ("sharingbus.dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ("sharingbus.dlq.at", datetime.now(UTC).isoformat().encode()),
    ]
    value = record.value
    if value is not None and len(value) > MAX_RECORD_BYTES:
        # Too big to produce as is: keep the head and say so, rather than wedge the stream.
        headers.append(("sharingbus.dlq.truncated", str(len(value)).encode()))
        value = value[:MAX_RECORD_BYTES]
    return Output(topics.dlq(stage), record.key, value, headers)


def header(headers: Headers | None, name: str) -> str | None:
    """First value of header `name`, decoded."""
    for k, v in headers or ():
        if k == name:
            return v.decode("utf-8", "replace") if v is not None else None
    return None
