"""What the embedded broker (Tansu 0.6.0, in memory) costs in CPU, alone: no bus code runs.

    .venv/bin/python -m benchmarks.broker_cost [--seconds 10] [--growth-seconds 40]

The enforcer's latency and its two-worker scaling are capped by the broker on a 2-core machine
(docs/performance.md). This measures why, with one confluent-kafka client against a fresh broker:

  produce  single-record batches at 1,000 records/s over 48 partitions (the shape of partner
           traffic: keyed records, a few ms of linger, so one record a batch), idempotent (as the
           Publisher and the enforcer produce) and not; then the same rate over 300 partitions of
           75 topics (the enforcer's outputs); broker CPU of a core, and microseconds a batch.
  growth   the same 1,000 records/s over 48 partitions with one consumer at the tail (fetch wait
           20 ms, the enforcer's), broker CPU per 10 s window: Tansu lists every stored batch of a
           partition on each fetch of it (`dynostore.rs`, `fetch`), so the cost of a fetch grows with
           the batches the partition already holds, and a constant rate costs more every second.

Broker CPU is read from /proc (user + system) over each window.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks._common import cpu_seconds, log
from streams.kafka.broker import EmbeddedBroker

PAYLOAD = b"x" * 200  # about a raw event's size


def _topics(admin: AdminClient, names: list[str], partitions: int) -> None:
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result()


def _produce_at(producer: Producer, topics: list[str], rate: int, seconds: float, tick: Any = None) -> int:
    """`rate` keyed records a second for `seconds`, round-robin over `topics`; returns how many."""
    start = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            producer.produce(topics[sent % len(topics)], PAYLOAD, key=str(sent).encode())
            sent += 1
        producer.poll(0)
        if tick is not None:
            tick()
        time.sleep(0.001)
    producer.flush(30)
    return sent


def produce_cost(
    idempotent: bool, topics: int, partitions: int, rate: int, seconds: float
) -> dict[str, float]:
    with EmbeddedBroker() as broker:
        assert broker.pid is not None
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        names = [f"t{i}" for i in range(topics)]
        _topics(admin, names, partitions)
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "enable.idempotence": idempotent,
                "acks": "all",
                "linger.ms": 2,
            }
        )
        cpu0, t0 = cpu_seconds(broker.pid), time.monotonic()
        sent = _produce_at(producer, names, rate, seconds)
        spent, cpu = time.monotonic() - t0, cpu_seconds(broker.pid) - cpu0
    return {"records": sent, "core": cpu / spent, "us_per_record": cpu / sent * 1e6}


def fetch_growth(rate: int, seconds: float, window: float = 10.0) -> list[float]:
    """Broker CPU of a core in each `window` while one consumer follows a steady producer."""
    with EmbeddedBroker() as broker:
        pid = broker.pid
        assert pid is not None
        _topics(AdminClient({"bootstrap.servers": broker.bootstrap}), ["t"], 48)
        stop = threading.Event()
        joined = threading.Event()

        def follow() -> None:
            consumer = Consumer(
                {
                    "bootstrap.servers": broker.bootstrap,
                    "group.id": "growth",
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 20,
                    "session.timeout.ms": 6000,
                }
            )
            consumer.subscribe(["t"], on_assign=lambda c, ps: joined.set())
            while not stop.is_set():
                consumer.consume(1000, 0.1)
            consumer.close()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        if not joined.wait(60):
            raise RuntimeError("the consumer never joined its group")
        producer = Producer(
            {"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2}
        )
        windows: list[float] = []
        mark = [time.monotonic(), cpu_seconds(pid)]

        def tick() -> None:
            now = time.monotonic()
            if now - mark[0] >= window:
                cpu = cpu_seconds(pid)
                windows.append((cpu - mark[1]) / (now - mark[0]))
                mark[:] = [now, cpu]

        _produce_at(producer, ["t"], rate, seconds, tick)
        stop.set()
        follower.join(10)
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="each produce measurement")
    parser.add_argument("--growth-seconds", type=float, default=40.0, help="the growth measurement")
    parser.add_argument("--rate", type=int, default=1000, help="records a second")
    args = parser.parse_args()
    rows = []
    for label, idempotent, topics, partitions in (
        ("48 partitions, idempotent", True, 1, 48),
        ("48 partitions, not idempotent", False, 1, 48),
        ("300 partitions (75 topics), idempotent", True, 75, 4),
    ):
        r = produce_cost(idempotent, topics, partitions, args.rate, args.seconds)
        log(f"produce, {label}: {r['core']:.0%} of a core, {r['us_per_record']:.0f} us a record")
        rows.append((label, r))
    growth = fetch_growth(args.rate, args.growth_seconds)
    print()
    print(f"Tansu (embedded, in memory) CPU at {args.rate:,} records a second, about one a batch")
    for label, r in rows:
        print(f"  produce, {label:<40} {r['core']:>5.0%} of a core  {r['us_per_record']:>5.0f} us a record")
    print(
        "  one producer and one tail consumer (fetch wait 20 ms), per 10 s: "
        + ", ".join(f"{c:.0%}" for c in growth)
        + " of a core"
    )


if __name__ == "__main__":
    main()
