"""Read a topic from the beginning to its current end.

"The end" is found with partition EOF (the high watermark of fetch responses), never with
ListOffsets: Tansu answers ListOffsets with the last batch's base offset + 1 (FAUST-NOTES.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.errors import BrokerError


def read_to_end(
    kafka_config: dict[str, Any], topic: str, timeout: float = 30.0, idle: float = 0.0
) -> Iterator[Message]:
    """Yield every record of `topic` (all partitions, from offset 0) until each partition hits EOF.

    `idle` keeps reading this many seconds after the last EOF, for callers racing a producer.
    A topic that does not exist yields nothing.
    """
    consumer = eof_consumer(kafka_config)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        yield from _drain(consumer, topic, sorted(meta.partitions), timeout, None, idle)
    finally:
        consumer.close()


def read_partitions(
    kafka_config: dict[str, Any],
    topic: str,
    partitions: Iterable[int],
    timeout: float,
    starts: Mapping[int, int] | None = None,
    idle: float = 0.0,
) -> Iterator[Message]:
    """Every record of some partitions of `topic`, from offset 0 (or `starts[p]`), until each hits
    EOF (the fetch high watermark); `idle` as in `read_to_end`."""
    wanted = sorted(set(partitions))
    if not wanted:
        return
    consumer = eof_consumer(kafka_config)
    try:
        yield from _drain(consumer, topic, wanted, timeout, starts, idle)
    finally:
        consumer.close()


def eof_consumer(kafka_config: dict[str, Any], name: str = "reader", reset: str = "earliest") -> Consumer:
    """A one-shot consumer (its own group `sharingbus-<name>-<random>`, no commits) that reports
    partition EOF; `reset` is what it does at an offset that is gone (`error` to be told)."""
    return Consumer(
        {
            **kafka_config,
            "group.id": f"sharingbus-{name}-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": reset,
        }
    )


def _drain(
    consumer: Consumer,
    topic: str,
    partitions: list[int],
    timeout: float,
    starts: Mapping[int, int] | None,
    idle: float,
) -> Iterator[Message]:
    consumer.assign([TopicPartition(topic, p, (starts or {}).get(p, 0)) for p in partitions])
    pending = set(partitions)
    deadline = time.monotonic() + timeout
    idle_until: float | None = None
    while True:
        if not pending:
            if idle_until is None:
                idle_until = time.monotonic() + idle
            if time.monotonic() >= idle_until:
                return
        if time.monotonic() > deadline:
            raise BrokerError(f"timed out reading {topic} to its end; partitions left: {sorted(pending)}")
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                pending.discard(msg.partition())
                continue
            if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return
            raise BrokerError(f"error reading {topic}[{msg.partition()}]: {err}")
        yield msg
