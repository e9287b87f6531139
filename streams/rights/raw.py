"""Re-reading one original raw record, to rectify it: seek to its offset and decode it.

The audit record of every decision names the input partition (`chain` = "<raw_topic>/<partition>")
and `source_offset`, so the original is found without scanning. Raw topics expire by retention:
a record no longer there cannot be rectified (the controller publishes a corrected event instead).
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from streams import topics
from streams.avro.catalogue import Catalogue
from streams.avro.serde import SchemaCache, SerdeError, decode
from streams.kafka.reader import eof_consumer
from streams.rights.model import RequestRefused

__all__ = ["RawReader", "split_chain"]


def split_chain(chain: str) -> tuple[str, int]:
    """("raw.<partner>.<type>", partition) of an audit chain id."""
    topic, _, partition = chain.rpartition("/")
    if not topic or not partition.isdigit():
        raise ValueError(f"not a chain id: {chain!r}")
    return topic, int(partition)


class RawReader:
    """Reads single raw records by (topic, partition, offset); blocking, one consumer per call."""

    def __init__(self, kafka_config: dict[str, Any], schemas: SchemaCache, catalogue: Catalogue) -> None:
        self._config = kafka_config
        self._schemas = schemas
        self._catalogue = catalogue

    def read(self, chain: str, offset: int, timeout: float = 15.0) -> dict[str, Any]:
        """The decoded event at `offset` of the chain's raw partition (read with the catalogue
        schema, as the enforcer reads it); RequestRefused if it is gone or unreadable."""
        topic, partition = split_chain(chain)
        _, event_type = topics.parse_raw(topic)
        consumer = eof_consumer(self._config, "rights", reset="error")
        try:
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        break
                    raise RequestRefused(f"original record unreadable: {err.str()}")
                if msg.offset() != offset:
                    break  # compacted or expired: the next record is someone else's
                try:
                    _, event = decode(
                        msg.value() or b"", self._schemas, self._catalogue.event_type(event_type).parsed
                    )
                except SerdeError as exc:
                    raise RequestRefused(f"original record does not decode: {exc}") from None
                return dict(event)
        finally:
            consumer.close()
        raise RequestRefused("the original record is no longer on its raw topic (retention)")
