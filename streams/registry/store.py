"""Persistence of the registry in a compacted Kafka topic, like Confluent's `_schemas`.

At start the topic is replayed to its end (partition EOF, never ListOffsets: Tansu reports wrong
end offsets). A write is acknowledged by the broker (acks=all, flushed) before it changes the
in-memory state, so nothing is served that a restart would lose. One registry writes a topic
(Confluent elects a single leader for the same reason); run others on their own topic.

With a `RecordCopy` each acknowledged record is also kept outside the broker, and an empty topic
(a broker that lost its data) is re-seeded from it, so ids survive the broker itself.
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
from streams.registry.copy import Pair, RecordCopy
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
        self,
        kafka_config: dict[str, Any],
        topic: str = topics.SCHEMAS,
        timeout: float = 30.0,
        copy: RecordCopy | None = None,
    ) -> None:
        self.kafka_config = dict(kafka_config)
        self.topic = topic
        self.timeout = timeout
        self.copy = copy
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
        with self.lock:
            pairs: list[Pair] = [
                (msg.key() or b"", msg.value())
                for msg in read_to_end(self.kafka_config, self.topic, timeout=self.timeout)
                if msg.key() is not None
            ]
            self._producer = Producer(
                {
                    **self.kafka_config,
                    "acks": "all",
                    "linger.ms": 0,
                    "max.in.flight.requests.per.connection": 1,
                }
            )
            seeded = False
            if self.copy is not None:
                if pairs:
                    self.copy.replace(pairs)
                else:
                    pairs = self.copy.read()
                    if pairs:
                        self._send(pairs)  # an empty topic: the broker lost it, the copy did not
                        seeded = True
            count = 0
            for key, value in pairs:
                record = decode(key, value)
                if record is not None:
                    self.state.apply(record)
                    count += 1
        source = f"the copy {self.copy.path} (re-seeded {self.topic})" if seeded and self.copy else self.topic
        log.info("registry replayed %d records from %s (max id %d)", count, source, self.state.max_id)
        return self

    def _send(self, pairs: Sequence[Pair]) -> None:
        """Produce `pairs` and wait until the broker acknowledged every one; RegistryError 50001 if not."""
        if self._producer is None:
            raise errors.store_error("the registry store is not open")
        failures: list[str] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        try:
            for key, value in pairs:
                self._producer.produce(self.topic, key=key, value=value, on_delivery=delivered)
            remaining = self._producer.flush(self.timeout)
        except (KafkaException, BufferError) as exc:
            raise errors.store_error(f"could not write to {self.topic}: {exc}") from exc
        if remaining or failures:
            reason = "; ".join(failures) or f"{remaining} records not acknowledged in {self.timeout}s"
            raise errors.store_error(f"could not write to {self.topic}: {reason}")

    def write(self, records: Sequence[Record]) -> None:
        """Persist `records` (acknowledged by the broker, then copied), then apply them; 50001 if not."""
        pairs = [encode(record) for record in records]
        with self.lock:
            self._send(pairs)
            if self.copy is not None:
                try:
                    self.copy.append(pairs)
                except OSError as exc:
                    raise errors.store_error(f"could not copy to {self.copy.path}: {exc}") from exc
            self.state.apply_all(records)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(5)
