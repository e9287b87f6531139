"""Persistence of the registry in a compacted Kafka topic, like Confluent's `_schemas`.

At start the topic is replayed to its end (partition EOF, never ListOffsets: Tansu reports wrong
end offsets). A write is acknowledged by the broker (acks=all, flushed) before it changes the
in-memory state, so nothing is served that a restart would lose. One registry writes a topic
(Confluent elects a single leader for the same reason); run others on their own topic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import PrivateAttr

from streams import topics
from streams.errors import BrokerError
from streams.kafka.admin import compacted, ensure_topics
from streams.kafka.reader import read_to_end
from streams.registry import errors
from streams.registry.records import Record, decode, encode
from streams.registry.state import RegistryState
from streams.settings import Settings

log = logging.getLogger(__name__)


class _GivenKafkaSettings(Settings):
    """Settings (partitions, replication from the environment) with a librdkafka config given as is.

    `ensure_topics` takes Settings; the registry may be handed a ready-made client config instead.
    """

    _conf: dict[str, Any] = PrivateAttr(default_factory=dict)

    def kafka_config(self, **extra: Any) -> dict[str, Any]:
        return {**self._conf, **extra}


class SchemaStore:
    """The registry state plus the topic it is persisted in; `lock` serialises every change."""

    def __init__(
        self, kafka_config: dict[str, Any], topic: str = topics.SCHEMAS, timeout: float = 30.0
    ) -> None:
        self.kafka_config = dict(kafka_config)
        self.topic = topic
        self.timeout = timeout
        self.state = RegistryState()
        self.lock = threading.RLock()
        self._producer: Producer | None = None

    def open(self) -> SchemaStore:
        """Create the topic if missing, replay it to its end and get ready to write."""
        settings = _GivenKafkaSettings(bootstrap_servers=str(self.kafka_config.get("bootstrap.servers", "")))
        settings._conf = self.kafka_config
        try:
            ensure_topics(settings, [compacted(self.topic, 1)], timeout=self.timeout)
        except KafkaException as exc:
            raise BrokerError(f"could not create or list topic {self.topic}: {exc}") from exc
        count = 0
        with self.lock:
            for msg in read_to_end(self.kafka_config, self.topic, timeout=self.timeout):
                record = decode(msg.key(), msg.value())
                if record is not None:
                    self.state.apply(record)
                    count += 1
            self._producer = Producer(
                {
                    **self.kafka_config,
                    "acks": "all",
                    "linger.ms": 0,
                    "max.in.flight.requests.per.connection": 1,
                }
            )
        log.info("registry replayed %d records from %s (max id %d)", count, self.topic, self.state.max_id)
        return self

    def write(self, records: Sequence[Record]) -> None:
        """Persist `records` (acknowledged by the broker), then apply them; RegistryError 50001 if not."""
        if self._producer is None:
            raise errors.store_error("the registry store is not open")
        failures: list[str] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        with self.lock:
            try:
                for record in records:
                    key, value = encode(record)
                    self._producer.produce(self.topic, key=key, value=value, on_delivery=delivered)
                remaining = self._producer.flush(self.timeout)
            except (KafkaException, BufferError) as exc:
                raise errors.store_error(f"could not write to {self.topic}: {exc}") from exc
            if remaining or failures:
                reason = "; ".join(failures) or f"{remaining} records not acknowledged in {self.timeout}s"
                raise errors.store_error(f"could not write to {self.topic}: {reason}")
            self.state.apply_all(records)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(5)
