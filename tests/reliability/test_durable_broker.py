"""The embedded broker keeps its data across restarts: kill -9, a clean restart, the same port at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import Schema

from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.reader import read_to_end
from streams.registry import EmbeddedRegistry
from streams.registry.client import registry_client
from streams.settings import Settings

TOPIC = "durable.events"


def _settings(bootstrap: str, tmp_path: Path) -> Settings:
    return Settings(bootstrap_servers=bootstrap, data_dir=tmp_path / "var")


def _values(bootstrap: str) -> list[str]:
    return [m.value().decode() for m in read_to_end({"bootstrap.servers": bootstrap}, TOPIC, timeout=60)]


def test_acknowledged_events_survive_a_kill_9_of_the_broker_mid_stream(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "broker"
    broker = EmbeddedBroker(port=port, data_dir=data, log_path=tmp_path / "tansu.log").start()
    ensure_topics(_settings(broker.bootstrap, tmp_path), [TopicSpec(TOPIC, 2)])
    acked: list[str] = []
    failed: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        (failed if err is not None else acked).append(msg.value().decode())

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
            "log_level": 0,
        }
    )
    total = 3000
    killed_at: list[int] = []

    def crash_and_restart() -> None:
        while len(acked) < 1000:
            time.sleep(0.01)
        killed_at.append(len(acked))
        broker.kill()
        broker.start()

    crasher = threading.Thread(target=crash_and_restart)
    crasher.start()
    try:
        for i in range(total):
            producer.produce(TOPIC, key=str(i % 11), value=f"event-{i}", on_delivery=delivered)
            producer.poll(0)
            if i % 200 == 0:
                time.sleep(0.05)  # a stream, not one burst: the kill lands between batches
        assert producer.flush(90) == 0
        crasher.join(60)
        assert killed_at and killed_at[0] < total, "the broker was not killed while events were in flight"
        stored = _values(broker.bootstrap)
    finally:
        broker.stop()
    assert not failed, f"{len(failed)} events were refused after the restart"
    assert len(acked) == total
    assert set(acked) <= set(stored), f"acknowledged but lost: {sorted(set(acked) - set(stored))[:5]}"


def test_a_restart_keeps_topics_schema_ids_and_group_offsets(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "broker"
    schema = Schema(
        json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}), "AVRO"
    )
    with EmbeddedBroker(port=port, data_dir=data, log_path=tmp_path / "tansu.log") as broker:
        ensure_topics(_settings(broker.bootstrap, tmp_path), [TopicSpec(TOPIC, 1)])
        producer = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
        for i in range(25):
            producer.produce(TOPIC, value=f"before-{i}")
        assert producer.flush(20) == 0
        with EmbeddedRegistry(bootstrap=broker.bootstrap) as registry:
            client = registry_client(Settings(schema_registry_url=registry.url))
            first_id = client.register_schema("durable.events-value", schema)
    with EmbeddedBroker(port=port, data_dir=data, log_path=tmp_path / "tansu.log") as broker:
        assert _values(broker.bootstrap) == [f"before-{i}" for i in range(25)]
        with EmbeddedRegistry(bootstrap=broker.bootstrap) as registry:
            client = registry_client(Settings(schema_registry_url=registry.url))
            assert json.loads(client.get_schema(first_id).schema_str) == json.loads(schema.schema_str)
            assert client.register_schema("durable.events-value", schema) == first_id


def test_sharebus_broker_restarts_on_the_same_port_at_once_with_its_data(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    argv = [
        sys.executable,
        "-m",
        "sharebus.main",
        "broker",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "b"),
    ]

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"broker: 127.0.0.1:{port}", line + (proc.stdout.read() if proc.poll() else "")
        return proc

    first = start()
    bootstrap = f"127.0.0.1:{port}"
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for i in range(10):
        producer.produce(TOPIC, value=f"kept-{i}")
    assert producer.flush(20) == 0  # and its connection stays open while the broker stops
    first.send_signal(signal.SIGINT)
    second = start()  # at once, as a user would: the first one may still be shutting down
    try:
        assert first.wait(30) == 0
        assert sorted(_values(bootstrap)) == sorted(f"kept-{i}" for i in range(10))
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(30)
