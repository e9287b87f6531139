"""The audit ledger's producer never times a record out: a cut link stalls it, and it delivers once
the link is back. An ordinary producer gives the same record up after `message.timeout.ms`, and a
given-up audit record followed by a delivered one would be a break in the hash chain.

Real Tansu behind a loopback proxy that cuts every connection (tests/support/proxy.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.deadletter import Output
from streams.errors import BrokerError
from streams.kafka.broker import free_port
from streams.kafka.producer import CHAINED_PRODUCER, DeliveringProducer
from streams.kafka.reader import read_to_end
from tests.support.proxy import TcpProxy
from tests.support.stack import Tansu

TOPIC = "chained.test"


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[tuple[dict[str, Any], TcpProxy]]:
    port = free_port()
    tansu = Tansu(advertised_port=port, log_path=tmp_path / "tansu.log")
    with TcpProxy(("127.0.0.1", tansu.port), port=port) as proxy:
        tansu.start()
        try:
            config: dict[str, Any] = {"bootstrap.servers": f"127.0.0.1:{port}"}
            admin = AdminClient(config)  # kept alive until its futures resolve
            for future in admin.create_topics([NewTopic(TOPIC, 1)]).values():
                future.result(30)
            yield config, proxy
        finally:
            tansu.stop()


def test_a_chained_producer_waits_out_a_cut_that_times_an_ordinary_one_out(
    behind_proxy: tuple[dict[str, Any], TcpProxy],
) -> None:
    config, proxy = behind_proxy
    short = {**config, "message.timeout.ms": 2000}
    ordinary = DeliveringProducer(short)
    chained = DeliveringProducer({**short, **CHAINED_PRODUCER})  # the same, made a chain's producer
    for producer, name in ((ordinary, b"warm-ordinary"), (chained, b"warm-chained")):
        assert producer.try_send_all([Output(TOPIC, name, name, partition=0)]) == ([], [])

    proxy.cut()
    gave_up = Output(TOPIC, b"ordinary", b"given up", partition=0)
    kept = Output(TOPIC, b"chained", b"kept", partition=0)
    ordinary_delivery = ordinary.start([gave_up])
    chained_delivery = chained.start([kept])

    failed, errors = ordinary.finish(ordinary_delivery, deadline=time.monotonic() + 30)
    assert failed == [gave_up] and errors and not errors[0].fatal()  # timed out: given up
    with pytest.raises(BrokerError, match="timed out waiting"):
        chained.finish(chained_delivery, deadline=time.monotonic() + 5)  # 5 s > 2 s: waiting, not failed
    assert chained_delivery.failed == []

    proxy.restore()
    assert chained.finish(chained_delivery, deadline=time.monotonic() + 60) == ([], [])
    values = [m.value() for m in read_to_end(config, TOPIC)]
    assert values == [b"warm-ordinary", b"warm-chained", b"kept"]
    ordinary.close()
    chained.close()


def test_an_outage_longer_than_the_stall_limit_is_not_taken_for_a_wedged_producer(
    behind_proxy: tuple[dict[str, Any], TcpProxy],
) -> None:
    """A wedged producer (a broker that forgot its producer id) is replaced after `stall_s` without a
    delivery while the broker answers. A cut, however long, is an outage: the producer reconnects
    and delivers, with no purge of records in flight (which, on a gap-less producer, is a fatal
    error) and no re-send.
    """
    config, proxy = behind_proxy
    stall_s = 4.0
    producer = DeliveringProducer({**config, **CHAINED_PRODUCER}, stall_s=stall_s)
    assert producer.try_send_all([Output(TOPIC, b"warm", b"warm", partition=0)]) == ([], [])

    proxy.cut()
    delivery = producer.start([Output(TOPIC, b"k", b"kept", partition=0)])
    outcome: list[Any] = []
    finishing = threading.Thread(target=lambda: outcome.append(_finish(producer, delivery)))
    finishing.start()
    time.sleep(2 * stall_s + 1.7)  # the cut: over twice the stall limit, ending between two probes
    proxy.restore()
    finishing.join(60)
    assert not finishing.is_alive()
    assert outcome == [([], [])], outcome
    assert producer.try_send_all([Output(TOPIC, b"after", b"after", partition=0)]) == ([], [])
    values = [m.value() for m in read_to_end(config, TOPIC)]
    assert values == [b"warm", b"kept", b"after"]
    producer.close()


def _finish(producer: DeliveringProducer, delivery: Any) -> Any:
    try:
        return producer.finish(delivery)
    except Exception as exc:  # reported by the assertion on the outcome
        return exc
