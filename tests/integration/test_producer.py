"""DeliveringProducer on the real broker: failures are reported record by record, successes silently."""

from __future__ import annotations

from collections.abc import Callable

from streams.deadletter import Output
from streams.kafka.producer import DeliveringProducer
from streams.kafka.reader import read_to_end
from streams.settings import Settings


def test_only_failed_records_come_back_rebuilt_from_their_messages(
    settings: Settings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("delivering", partitions=2)
    producer = DeliveringProducer(settings.kafka_config(**{"message.timeout.ms": 5000}))
    good = [
        Output(topic, b"k1", b"v1", [("h", b"1")], partition=1),
        Output(topic, b"k2", b"v2"),
    ]
    bad = Output(topic, b"k3", b"v3", [("h", b"3")], partition=7)  # no such partition
    failed, errors = producer.try_send_all([good[0], bad, good[1]])
    assert failed == [bad]
    assert len(errors) == 1 and not errors[0].fatal()
    got = sorted((m.key(), m.value(), m.partition()) for m in read_to_end(settings.kafka_config(), topic))
    assert [(k, v) for k, v, _ in got] == [(b"k1", b"v1"), (b"k2", b"v2")]
    assert got[0][2] == 1

    # The rebuilt record goes where it was meant to once it can (here: to an existing partition).
    retry = Output(bad.topic, bad.key, bad.value, bad.headers, partition=0)
    assert producer.try_send_all([retry]) == ([], [])
    producer.close()
