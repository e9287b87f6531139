"""A batched consumer hands over what has arrived without waiting to fill a batch (latency).

A slow stream (a few records a poll) must not pay the poll timeout on every batch: at 1k events/s
a consumer waiting for 2,000 records or 100 ms added 100 ms to every event's publish-to-share time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition

from agents.batched import BatchedConsumer
from streams.settings import Settings


def _consumer(settings: Settings, topic: str) -> Consumer:
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"batch-poll-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    return consumer


def test_a_few_fetched_records_come_back_without_waiting_for_a_full_batch(
    settings: Settings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("batchpoll", partitions=1)
    producer = Producer(settings.kafka_config(**{"linger.ms": 0}))
    consumer = _consumer(settings, topic)
    try:
        durations = []
        received = 0
        for i in range(5):
            for j in range(3):
                producer.produce(topic, key=b"k", value=f"{i}.{j}".encode(), partition=0)
            producer.flush(10)
            # let the fetcher bring all three into librdkafka's queue, then time the poll alone
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.05)
                _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, 0), cached=True)
                if hi >= 3 * (i + 1):
                    break
            time.sleep(0.1)
            started = time.perf_counter()
            records = BatchedConsumer._poll(consumer)
            durations.append(time.perf_counter() - started)
            received += len(records)
            while received < 3 * (i + 1):  # drain anything the fetcher had not queued yet
                more = BatchedConsumer._poll(consumer)
                received += len(more)
                assert more or time.monotonic() < deadline, "records produced but never consumed"
        assert received == 15
        # Waiting for a full batch costs the whole poll timeout (100 ms) every time; the fastest of
        # five polls of already-fetched records takes a few milliseconds.
        assert min(durations) < 0.05, durations
    finally:
        consumer.close()
