"""Restarts of what the worker depends on: the schema registry and the broker.

Registry: the embedded registry persists to a compacted topic (`_schemas`-like, one per registry:
a topic of this test's own). A registry stopped and started on the same topic must come back with
every id, subject, version and compatibility setting, hand out the same id for a schema it knows
and a fresh one for a new schema. A worker running across a registry restart reports it (/ready
503 while the registry is away), keeps deciding events whose schemas it knows, does not dead-letter
valid events whose schema it has not met yet (a registry outage is not a bad event) and is ready
again afterwards.

Broker: see `test_worker_reports_a_vanished_broker_and_recovers_when_one_returns`, and
`test_a_producer_delivers_to_a_broker_that_replaced_its_own` for the producer underneath it.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams import topics
from streams.avro.serde import SchemaCache, encode
from streams.deadletter import Output
from streams.errors import BrokerError
from streams.kafka.admin import TopicSpec, ensure_topics, partition_counts
from streams.kafka.broker import free_port
from streams.kafka.producer import CHAINED_PRODUCER, DeliveringProducer
from streams.publish.publisher import prepare_event
from streams.publish.simulate import Simulation
from streams.registry import EmbeddedRegistry
from streams.registry.client import registry_client
from streams.settings import Settings
from tests.support.stack import (
    Stack,
    Tansu,
    audit_records,
    crash_lines,
    header,
    open_stack,
    produce_all,
    publish,
    raw_producer,
    read_topic,
    stored_decisions,
    tracebacks,
    wait_decided,
    wait_until,
)

pytestmark = pytest.mark.slow


def _registry_state(client: SchemaRegistryClient, ids: list[int]) -> dict[str, object]:
    subjects = sorted(client.get_subjects())
    return {
        "subjects": subjects,
        "versions": {s: client.get_versions(s) for s in subjects},
        "schemas": {i: client.get_schema(i).schema_str for i in ids},
        "latest": {s: client.get_latest_version(s).schema_id for s in subjects},
        "compatibility": {s: _compatibility(client, s) for s in subjects},
    }


def _compatibility(client: SchemaRegistryClient, subject: str) -> str | None:
    try:
        return str(client.get_compatibility(subject))
    except SchemaRegistryError:
        return None  # no subject-level setting


def test_registry_restart_keeps_every_id(stack: Stack) -> None:
    catalogue = stack.catalogue
    topic = f"_schemas_rel_{uuid.uuid4().hex[:8]}"
    registry = EmbeddedRegistry(stack.broker.bootstrap, topic=topic).start()
    port = registry.port
    try:
        client = SchemaRegistryClient({"url": registry.url})
        first: dict[str, int] = {}
        for _, event_type, raw_topic in catalogue.raw_topics():
            subject = topics.value_subject(raw_topic)
            first[subject] = client.register_schema(
                subject, Schema(_schema_text(catalogue, event_type), "AVRO")
            )
        ids = list(first.values())
        # A second version of one subject (a new optional field: BACKWARD compatible) and a
        # subject-level compatibility setting must survive too.
        evolved_subject = topics.value_subject(topics.raw("thames_valley_police", "police.stop_search"))
        ids.append(client.register_schema(evolved_subject, Schema(_evolved(catalogue), "AVRO")))
        client.set_compatibility(evolved_subject, "FULL")
        before = _registry_state(client, ids)
        assert len(set(ids)) >= len(catalogue.event_types) + 1
    finally:
        registry.stop()

    with pytest.raises(Exception):  # noqa: B017 - down means down, whatever the client raises
        SchemaRegistryClient({"url": f"http://127.0.0.1:{port}"}).get_subjects()

    restarted = EmbeddedRegistry(stack.broker.bootstrap, port=port, topic=topic).start()
    try:
        fresh = SchemaRegistryClient({"url": restarted.url})  # no client-side cache
        assert _registry_state(fresh, ids) == before
        # Known schemas keep their ids; a new one gets an id no one had.
        for _, event_type, raw_topic in catalogue.raw_topics():
            subject = topics.value_subject(raw_topic)
            assert (
                fresh.register_schema(subject, Schema(_schema_text(catalogue, event_type), "AVRO"))
                == first[subject]
            )
        new_id = fresh.register_schema(
            f"rel-new-{uuid.uuid4().hex[:6]}-value", Schema(_evolved(catalogue, "x2"), "AVRO")
        )
        assert new_id not in ids and new_id > max(ids)
    finally:
        restarted.stop()


def _schema_text(catalogue: object, event_type: str) -> str:
    import json

    return json.dumps(catalogue.event_type(event_type).schema)  # type: ignore[attr-defined]


def _evolved(catalogue: object, field: str = "rel_note") -> str:
    import json

    schema = dict(catalogue.event_type("police.stop_search").schema)  # type: ignore[attr-defined]
    schema["fields"] = [*schema["fields"], {"name": field, "type": ["null", "string"], "default": None}]
    return json.dumps(schema)


@pytest.fixture
def own_registry_topic(tmp_path: Path) -> object:
    with open_stack(tmp_path / "bus", registry_topic=f"_schemas_rel_{uuid.uuid4().hex[:8]}") as stack:
        yield stack


def test_worker_rides_out_a_registry_restart(own_registry_topic: Stack) -> None:
    stack = own_registry_topic
    settings = stack.settings
    catalogue = stack.catalogue
    worker = stack.start_worker(wait=False)  # it starts while the partners publish
    events = list(Simulation(seed=707, people=200).events(400))
    known = [e for e in events if e[1] != "police.stop_search"]
    unseen = [e for e in events if e[1] == "police.stop_search"]
    assert unseen
    first = publish(settings, known[: len(known) // 2])
    worker.wait_ready()
    wait_decided(settings, {p.event_id for p in first})

    # Frames made now, as a partner's client would have them ready (its serializer caches the id):
    # one batch of a known event type, one of a type the worker has not decoded yet.
    schemas = SchemaCache(registry_client(settings))

    def frames(
        batch: list[tuple[str, str, dict[str, object]]],
    ) -> tuple[list[tuple[str, bytes, bytes]], set[str]]:
        out, ids = [], set()
        for partner, event_type, event in batch:
            topic = topics.raw(partner, event_type)
            et = catalogue.event_type(event_type)
            record = prepare_event(catalogue, partner, event_type, event)
            schema_id = schemas.id_for(topics.value_subject(topic), et.schema)
            out.append(
                (topic, str(record["envelope"]["event_id"]).encode(), encode(et.parsed, schema_id, record))
            )
            ids.add(str(record["envelope"]["event_id"]))
        return out, ids

    known_frames, known_ids = frames(
        [e for e in known[len(known) // 2 :] if e[1] in {p.event_type for p in first}]
    )
    unseen_frames, unseen_ids = frames(unseen)

    port = stack.registry.port
    stack.registry.stop()
    try:
        wait_until(lambda: not worker.ready(), 30, "/ready to report the registry gone", 0.5)
        body = httpx.get(f"{worker.url}/ready", headers=worker.ops, timeout=10).json()
        assert body["checks"]["registry_reachable"] is False
        produce_all(raw_producer(settings), known_frames)
        wait_decided(settings, known_ids, timeout=60)  # schemas the worker knows: no registry needed
        log_before = len(worker.log())
        produce_all(raw_producer(settings), unseen_frames)
        # The worker meets a schema id it cannot look up while the registry is away, and keeps the
        # batch to decide again (agents/enforcer.py logs each attempt) instead of giving it up.
        wait_until(
            lambda: "deciding the batch again (attempt 1)" in worker.log()[log_before:],
            60,
            "the worker to retry a batch whose schema the absent registry cannot give",
            0.2,
        )
    finally:
        stack.registry = EmbeddedRegistry(
            stack.broker.bootstrap, port=port, topic=stack.registry.topic
        ).start()

    wait_until(worker.ready, 60, "/ready to recover with the registry", 0.5)

    def settled() -> tuple[set[str], Counter[str | None]] | None:
        """(undecided ids, dead letters by reason) once every valid event is decided or dead."""
        letters = Counter(header(m, "sharingbus.dlq.reason") for m in read_topic(settings, "dlq.enforcer"))
        undecided = unseen_ids - {r["event_id"] for r in audit_records(settings)}
        return (undecided, letters) if len(undecided) <= sum(letters.values()) else None

    undecided, letters = wait_until(settled, 60, "the unseen schema's events to be handled", 0.5)
    assert not undecided and not letters, (
        f"{len(undecided)} of {len(unseen_ids)} valid events never decided after a registry restart; "
        f"dead letters by reason: {dict(letters)}"
    )
    assert worker.proc.poll() is None
    assert crash_lines(worker.log()) == []


def test_worker_reports_a_vanished_broker_and_recovers_when_one_returns(tmp_path: Path) -> None:
    """The broker disappears under a running worker, then a new one starts at the same address.

    What is lost depends on the broker. The embedded Tansu keeps everything in memory, so a new
    Tansu at the same address has NO topics and NO data: raw, shared, audit, link and view topics
    and their records, the `_schemas` topic (the registry re-seeds it from its own copy when it
    restarts) and every committed consumer offset. Each audit chain continues on the fresh topic
    after an epoch record linking to its head in PostgreSQL (`test_broker_loss.py`). Apache Kafka
    keeps all of that on disk and replicated: a broker restart there is a leader fail-over, and
    the worker sees only the reconnection, as in `test_network.py`.

    So the bar here is operational: while the broker is gone the worker says so (its /ready turns
    503, or it logs the unreachable broker by address); it does not crash or crash-loop; once the
    topics are re-created (as an operator, or a deployment's init step, would), it is ready again
    without a restart and decides new events, and its /ready is not green for long while they
    wait. The worker starts while the partners publish: its producers then hold producer ids the
    new broker has never issued (in the other order the ids happened to be issued again), which
    left every new decision waiting for ever behind a green /ready.
    """
    port = free_port()
    broker = Tansu(port=port, log_path=tmp_path / "tansu.log")
    with open_stack(tmp_path / "bus", broker=broker) as stack:
        settings = stack.settings
        worker = stack.start_worker(wait=False)  # it starts while the partners publish
        pid = worker.proc.pid
        sim = Simulation(seed=808, people=200)
        before = publish(settings, sim.events(200))
        worker.wait_ready()
        wait_decided(settings, {p.event_id for p in before})
        log_before = len(worker.log())

        layout = {name: n for name, n in partition_counts(settings).items() if not name.startswith("__")}
        broker.stop()
        gone_at = time.monotonic()
        address = f"127.0.0.1:{port}"
        statuses: list[int] = []

        def reported() -> bool:
            try:
                statuses.append(httpx.get(f"{worker.url}/ready", headers=worker.ops, timeout=5).status_code)
            except httpx.HTTPError:
                statuses.append(0)
            said = worker.log()[log_before:]
            return statuses[-1] == 503 or any(
                address in line and "connect" in line.lower() for line in said.splitlines()
            )

        wait_until(reported, 30, "the worker to report the missing broker", 0.5)
        time.sleep(max(0.0, 10 - (time.monotonic() - gone_at)))  # a while without a broker
        assert worker.proc.poll() is None, "the worker died without its broker"

        broker.start()  # same address, empty
        # Re-create every topic the old broker had (the bus's own and Faust's changelogs), with its
        # partition count, as an operator replaying the deployment's topic definitions would.
        ensure_topics(settings, [TopicSpec(name, n) for name, n in sorted(layout.items())])
        after = publish(settings, sim.events(200))
        after_ids = {p.event_id for p in after}
        samples: list[tuple[float, int]] = []  # (when, /ready status) until the new events are decided

        def decided() -> bool:
            try:
                samples.append(
                    (
                        time.monotonic(),
                        httpx.get(f"{worker.url}/ready", headers=worker.ops, timeout=5).status_code,
                    )
                )
            except httpx.HTTPError:
                samples.append((time.monotonic(), 0))
            return after_ids <= {r.get("event_id") for r in audit_records(settings)}  # epochs have none

        try:
            wait_until(decided, 60, "the new events to be decided on the new broker", 0.5)
            decided_at = time.monotonic()
            wait_until(worker.ready, 60, "/ready to answer 200 on the new broker", 0.5)
        except AssertionError as exc:
            ready = httpx.get(f"{worker.url}/ready", headers=worker.ops, timeout=5).text
            raise AssertionError(
                f"{exc}; /ready: {ready}; crashes: {crash_lines(worker.log())[:2]}; "
                f"errors: {sorted(set(tracebacks(worker.log())))[:3]}"
            ) from None
        # Ready means able to make progress: green only shortly before the waiting events were
        # decided, never for the length of librdkafka's message timeout (60 s).
        green_waits = [decided_at - at for at, status in samples if status == 200]
        assert max(green_waits, default=0.0) < 30.0, (max(green_waits), sorted({s for _, s in samples}))

        assert worker.proc.poll() is None and worker.proc.pid == pid
        assert worker.log().count("[^Worker]: Starting...") == 1
        assert crash_lines(worker.log()) == [], "an agent crashed (Faust acks a crashed agent's batch)"
        wanted = {p.event_id for p in before} | after_ids
        wait_until(  # the audit sink stores what is on the topic, a moment later
            lambda: wanted <= {e for e, _, _ in stored_decisions(settings.postgres_dsn)},
            60,
            "every decision in PostgreSQL",
            0.5,
        )
        print(
            f"\nbroker: /ready while gone {sorted(set(statuses))}; new events decided "
            f"{decided_at - samples[0][0]:.1f} s after publishing, /ready green at most "
            f"{max(green_waits, default=0.0):.1f} s before"
        )


def test_a_producer_delivers_to_a_broker_that_replaced_its_own(tmp_path: Path) -> None:
    """An idempotent producer keeps its producer id across a broker replacement; the new (empty,
    in-memory) broker does not know that id and answers every request UNKNOWN_PRODUCER_ID, which
    librdkafka meets only by bumping the epoch locally: no error reaches the application, and the
    audit ledger's producer (no message timeout) would wait for ever. `DeliveringProducer` sees
    that nothing is delivered while the broker answers and starts a fresh producer: the records
    arrive within seconds of the stall, not never."""
    port = free_port()
    broker = Tansu(port=port, log_path=tmp_path / "tansu.log")
    broker.start()
    producer = None
    try:
        settings = Settings(bootstrap_servers=broker.bootstrap)
        ensure_topics(settings, [TopicSpec("chain", 4)])
        producer = DeliveringProducer(settings.kafka_config(**CHAINED_PRODUCER))
        before = [Output("chain", f"k{i}".encode(), f"before-{i}".encode()) for i in range(40)]
        assert producer.send_all(before, deadline_s=30) == 0

        broker.stop()
        broker.start()  # same address, nothing kept: no topic, no producer id
        ensure_topics(settings, [TopicSpec("chain", 4)])
        after = [Output("chain", f"k{i}".encode(), f"after-{i}".encode()) for i in range(40)]
        started = time.monotonic()
        try:
            producer.send_all(after, deadline_s=50)
        except BrokerError as exc:
            raise AssertionError(f"undelivered 50 s after the broker was replaced: {exc}") from None
        took = time.monotonic() - started
        got = sorted((m.value() or b"").decode() for m in read_topic(settings, "chain"))
        assert got == sorted(f"after-{i}" for i in range(40))
        assert took < 30, took  # the stall allowed (10 s), one fresh producer id, a re-send
        print(f"\nproducer: delivered to the replacement broker after {took:.1f} s")
    finally:
        if producer is not None:
            producer.close(1.0)
        broker.stop()
