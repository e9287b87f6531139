"""End offsets after batched writes: ListOffsets is wrong on Tansu, fetch high watermarks are not."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.kafka.offsets import end_offsets
from streams.kafka.reader import read_to_end
from streams.settings import Settings


def _write_batched(settings: Settings, topic: str, singles: int, batch: int) -> None:
    producer = Producer(settings.kafka_config(**{"linger.ms": 50}))
    for i in range(singles):
        producer.produce(topic, key=b"k", value=str(i).encode(), partition=0)
        producer.flush()
    for i in range(batch):
        producer.produce(topic, key=b"k", value=str(i).encode(), partition=0)
    producer.flush()


def test_end_offsets_count_every_record_of_a_batched_write(
    settings: Settings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("offsets", partitions=2)
    _write_batched(settings, topic, singles=5, batch=2000)
    ends = end_offsets(settings.kafka_config(), [(topic, 0), (topic, 1)])
    assert ends == {(topic, 0): 2005, (topic, 1): 0}


def test_read_to_end_reads_every_record_of_a_batched_write(
    settings: Settings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("reader", partitions=1)
    _write_batched(settings, topic, singles=3, batch=1500)
    values = [m.value() for m in read_to_end(settings.kafka_config(), topic)]
    assert len(values) == 1503


def test_list_offsets_on_the_embedded_broker_stops_short(
    settings: Settings, topic_factory: Callable[..., str]
) -> None:
    """Documents why `end_offsets` exists: if Tansu is fixed this fails and the work-around can go."""
    topic = topic_factory("listoffsets", partitions=1)
    _write_batched(settings, topic, singles=5, batch=20)
    consumer = Consumer(settings.kafka_config(**{"group.id": "listoffsets-probe"}))
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        consumer.close()
    assert high < 25
