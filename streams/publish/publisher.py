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
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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

PRODUCER_DEFAULTS = {"acks": "all", "enable.idempotence": True, "linger.ms": 10}
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
    """

    event_id: str
    topic: str
    record: dict[str, Any]
    id_source: IdSource = "given"


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
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue or load_catalogue(settings.schemas_dir)
        self.record_ids = record_ids or RecordIds.load_or_create(settings.record_id_key_path)
        self.partner = self.catalogue.partner(partner)
        conf = {**PRODUCER_DEFAULTS, **(producer_config or {})}
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
        topic = topics.raw(self.partner.id, event_type)
        event_id = record["envelope"]["event_id"]
        value = self._serialize(event_type, topic, record)
        callback = self._callback(event_id, on_delivery)
        while True:
            try:
                self._producer.produce(topic, value=value, key=event_id.encode(), on_delivery=callback)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)
        return Sent(event_id, topic, record, prepared.id_source)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every outstanding delivery; DeliveryError lists the events that failed."""
        left = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
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
