"""Publisher SDK: one partner's events, validated, registry-framed and sent to its raw topics.

    with Publisher(settings, "reading_schools") as pub:
        pub.publish("education.exclusion", {"envelope": {"occurred_at": "2025-03-03T09:00"}, ...})
    # leaving the block flushes; DeliveryError lists every event the broker did not acknowledge

Events are checked before they leave the process (`streams.publish.prepare`), so a partner learns
about a bad field at once, with its dotted path (`subject.date_of_birth: ...`), not from a
dead-letter topic later. The event id is derived from the record key the catalogue declares
(`streams.publish.record_ids`), so publishing a row again, from an overlapping extract, a retry or
a backfill, sends the same event, which every stage de-duplicates. A `source_partner` other than
the bound partner, and event types the partner does not publish (schemas/partners.yaml), are
refused. Messages are keyed by `event_id` with acks=all and idempotence, serialized by
confluent-kafka's `AvroSerializer`, which registers the catalogue schema under `<topic>-value` on
first use.

With a `PublishLedger` (`sharebus publish` uses one), a row whose record key was published before
with different content is a correction: it is sent as a rectification request for that event
(`streams.publish.ledger`), never as a second version of the event.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams import topics
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.errors import SharingBusError
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.publish.ledger import ENVELOPE_TIME, PublishLedger, changed_fields, field_values, jsonable
from streams.publish.prepare import EventInvalid, IdSource, prepare, prepare_event
from streams.publish.record_ids import RecordIds
from streams.settings import Settings

__all__ = [
    "DeliveryError",
    "EventInvalid",
    "PublishError",
    "Publisher",
    "Sent",
    "ensure_raw_topics",
    "prepare_event",
]

PRODUCER_DEFAULTS = {"acks": "all", "enable.idempotence": True}
DeliveryCallback = Callable[[str, str | None], None]  # (event_id, error or None)


class PublishError(SharingBusError):
    """The registry or broker refused what the publisher sent."""


class DeliveryError(PublishError):
    """Events the broker did not acknowledge; `failures` is [(event_id, reason)]."""

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        shown = "; ".join(f"{eid}: {reason}" for eid, reason in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(f"{len(self.failures)} event(s) not delivered: {shown}{more}")


@dataclass(frozen=True)
class Sent:
    """What `publish` handed to the producer (delivery is confirmed by `flush`).

    `id_source` is "record_key" for a derived id, "given" for the partner's own, and "random" when
    a record key field was empty: such an event is a new one each time it is published.
    `corrects` is the request id when the row corrected an event published before (`topic` and
    `record` are then the request's).
    """

    event_id: str
    topic: str
    record: dict[str, Any]
    id_source: IdSource = "given"
    corrects: str | None = None


# --- the publisher ------------------------------------------------------------------------------


class Publisher:
    """Publishes one partner's events; thread-safe for `publish`, one producer per instance."""

    def __init__(
        self,
        settings: Settings,
        partner: str,
        catalogue: Catalogue | None = None,
        *,
        registry: SchemaRegistryClient | None = None,
        producer_config: Mapping[str, Any] | None = None,
        record_ids: RecordIds | None = None,
        ledger: PublishLedger | None = None,
        requester: str = "publisher",
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.requester = requester
        self.catalogue = catalogue or load_catalogue(settings.schemas_dir)
        self.record_ids = record_ids or RecordIds.load_or_create(settings.record_id_key_path)
        self.partner = self.catalogue.partner(partner)
        conf = {**PRODUCER_DEFAULTS, "linger.ms": settings.publish_linger_ms, **(producer_config or {})}
        self._producer = Producer(settings.kafka_config(**conf))
        self._registry = registry or SchemaRegistryClient(settings.registry_config())
        self._serializers: dict[str, AvroSerializer] = {}
        self._failures: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._closed = False

    def prepare(self, event_type: str, event: Any) -> dict[str, Any]:
        """Validate and complete `event` without sending it (EventInvalid on any problem)."""
        return prepare_event(self.catalogue, self.partner.id, event_type, event, ids=self.record_ids)

    def publish(self, event_type: str, event: Any, on_delivery: DeliveryCallback | None = None) -> Sent:
        """Validate and send one event; `on_delivery(event_id, error)` runs once the broker answers."""
        if self._closed:
            raise PublishError("publisher is closed")
        prepared = prepare(self.catalogue, self.partner.id, event_type, event, ids=self.record_ids)
        record = prepared.record
        event_id = record["envelope"]["event_id"]
        sent_type, sent_record, corrects, digests = event_type, record, None, None
        if self.ledger is not None and prepared.id_source != "random":
            digests = self.ledger.digests(record)
            before = self.ledger.get(event_id)
            if before is not None and before != digests:
                sent_type, sent_record = self._rectification(event_type, event_id, record, before, digests)
                corrects = str(sent_record["envelope"]["event_id"])
        topic = topics.raw(self.partner.id, sent_type)
        value = self._serialize(sent_type, topic, sent_record)
        key = corrects or event_id
        callback = self._callback(event_id, on_delivery)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key.encode(), on_delivery=callback)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
        if self.ledger is not None and digests is not None:
            self.ledger.put(event_id, event_type, digests)  # taken out again if delivery fails
        self._producer.poll(0)
        return Sent(event_id, topic, sent_record, prepared.id_source, corrects)

    def _rectification(
        self,
        event_type: str,
        event_id: str,
        record: dict[str, Any],
        before: dict[str, str],
        after: dict[str, str],
    ) -> tuple[str, dict[str, Any]]:
        """The rectification request that carries a corrected row's changed fields to the bus."""
        from streams.rights.model import REQUEST_EVENT_TYPE  # streams.rights imports this package

        changed = changed_fields(before, after)
        if ENVELOPE_TIME in changed:
            raise EventInvalid(
                [
                    (
                        ENVELOPE_TIME,
                        "differs from the event published with this record key, and the envelope cannot "
                        "be corrected: ask for its erasure (sharebus request) and publish the row again",
                    )
                ]
            )
        values = field_values(record)
        request = {
            "envelope": {"occurred_at": datetime.now(UTC)},
            "kind": "rectify",
            "event_ids": [event_id],
            "corrections": {path: json.dumps(jsonable(values.get(path))) for path in changed},
            "reason": f"{event_type} re-published with corrected fields: {', '.join(changed)}",
            "requester": f"{self.partner.id}:{self.requester}",
        }
        return REQUEST_EVENT_TYPE, prepare_event(
            self.catalogue, self.partner.id, REQUEST_EVENT_TYPE, request, ids=self.record_ids
        )

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every outstanding delivery; DeliveryError lists the events that failed."""
        left = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if self.ledger is not None:
            self.ledger.commit()  # what was delivered; failed deliveries were taken out
        if left:
            failures.append(("?", f"{left} message(s) still queued after {timeout}s"))
        if failures:
            raise DeliveryError(failures)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop accepting events (raises DeliveryError like `flush`)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout)
        finally:
            self._producer.close()  # releases librdkafka threads and sockets now, not at GC
            if self.ledger is not None:
                self.ledger.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # do not hide the original error behind a delivery report
            with contextlib.suppress(DeliveryError):
                self.close()

    def _serialize(self, event_type: str, topic: str, record: dict[str, Any]) -> bytes:
        serializer = self._serializers.get(event_type)
        if serializer is None:
            schema = self.catalogue.event_type(event_type).schema
            serializer = AvroSerializer(
                self._registry, json.dumps(schema), conf={"auto.register.schemas": True}
            )
            self._serializers[event_type] = serializer
        try:
            out = serializer(record, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:  # SchemaRegistryError (incompatible, unreachable), SerializationError
            raise PublishError(f"cannot serialize {event_type} for {topic}-value: {exc}") from exc
        assert out is not None
        return out

    def _callback(
        self, event_id: str, user: DeliveryCallback | None
    ) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            reason = None if err is None else str(err)
            if reason is not None:
                with self._lock:
                    self._failures.append((event_id, reason))
                if self.ledger is not None:
                    self.ledger.forget_pending(event_id)
            if user is not None:
                user(event_id, reason)

        return delivered


def ensure_raw_topics(
    settings: Settings, catalogue: Catalogue | None = None, partner: str | None = None
) -> list[str]:
    """Create the raw topics (all partners, or one) with settings.topic_partitions; returns new ones."""
    cat = catalogue or load_catalogue(settings.schemas_dir)
    specs = [TopicSpec(t) for p, _, t in cat.raw_topics() if partner is None or p == partner]
    return ensure_topics(settings, specs)
