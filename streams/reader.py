"""Read a topic from the beginning to its current end.

"The end" is found with partition EOF (the high watermark of fetch responses), never with
ListOffsets: Tansu answers ListOffsets with the last batch's base offset + 1 (FAUST-NOTES.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.errors import BrokerError


def read_to_end(
    kafka_config: dict[str, Any], topic: str, timeout: float = 30.0, idle: float = 0.0
) -> Iterator[Message]:
    """Yield every record of `topic` (all partitions, from offset 0) until each partition hits EOF.

    `idle` keeps reading this many seconds after the last EOF, for callers racing a producer.
    """
    conf = dict(kafka_config)
    conf.update(
        {
            "group.id": f"sharingbus-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    consumer = Consumer(conf)
    try:
        md = consumer.list_topics(topic, timeout=10)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            return
        partitions = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
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
                raise BrokerError(f"error reading {topic}: {err}")
            yield msg
    finally:
        consumer.close()
