"""True end offsets from fetch high watermarks.

Tansu answers ListOffsets(latest) with the last batch's base offset + 1, so anything that asks for
"the end" that way (aiokafka's `end_offsets`, librdkafka's uncached `get_watermark_offsets`, Faust's
table recovery) stops short after batched writes. The high watermark inside a fetch response is
right, so this module fetches once per partition and reads the cached (fetch) watermark. On Apache
Kafka both answers agree, so the same code is correct everywhere, at the cost of one fetch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_END, KafkaError, TopicPartition

from streams.errors import BrokerError
from streams.kafka.reader import eof_consumer


def end_offsets(
    kafka_config: dict[str, Any], partitions: Iterable[tuple[str, int]], timeout: float = 30.0
) -> dict[tuple[str, int], int]:
    """{(topic, partition): offset one past the last record} for each partition, from fetches."""
    wanted = sorted(set(partitions))
    if not wanted:
        return {}
    # A fetch at the end returns only when its wait is over on Tansu: keep the wait short.
    consumer = eof_consumer({**kafka_config, "fetch.wait.max.ms": 20, "log_level": 3}, "offsets")
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_END) for t, p in wanted])
        pending = set(wanted)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(f"no fetch answer within {timeout}s for {sorted(pending)}")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise BrokerError(f"fetch failed for {msg.topic()}/{msg.partition()}: {err}")
            if err is not None:
                pending.discard((msg.topic(), msg.partition()))
        result = {}
        for topic, partition in wanted:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            result[(topic, partition)] = int(high)
        return result
    finally:
        consumer.close()
