"""A broker replaced by an empty one (the embedded, in-memory Tansu restarted): what survives.

The in-memory broker keeps nothing, so each component keeps what it must outside it: the registry
a copy of its `_schemas` records (re-seeded into the empty topic with the same ids), the audit
ledger its chain heads in PostgreSQL (continued with an explicit epoch record).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache, decode, encode
from streams.kafka.admin import partition_counts
from streams.kafka.broker import free_port
from streams.publish.publisher import prepare_event
from streams.publish.simulate import Simulation
from streams.registry import EmbeddedRegistry
from streams.settings import Settings
from tests.support.stack import (
    Tansu,
    audit_records,
    crash_lines,
    open_stack,
    publish,
    stored_decisions,
    tracebacks,
    wait_decided,
    wait_until,
)

pytestmark = pytest.mark.slow


def _state(client: SchemaRegistryClient) -> dict[str, dict[int, int]]:
    """Subject -> version -> schema id."""
    return {
        s: {v: client.get_version(s, v).schema_id for v in client.get_versions(s)}
        for s in sorted(client.get_subjects())
    }


def _kept(before: dict[str, dict[int, int]], after: dict[str, dict[int, int]]) -> dict[str, object]:
    """What of `before` differs in `after` (empty: every subject, version and id kept)."""
    return {s: after.get(s) for s, versions in before.items() if after.get(s) != versions}


def test_registry_keeps_its_ids_across_a_broker_replacement(tmp_path: Path) -> None:
    catalogue = load_catalogue(Settings().schemas_dir)
    copy = tmp_path / "registry" / "_schemas.jsonl"
    port = free_port()
    broker = Tansu(port=port, log_path=tmp_path / "tansu.log")
    broker.start()
    try:
        registry = EmbeddedRegistry(broker.bootstrap, copy_path=copy).start()
        try:
            client = SchemaRegistryClient({"url": registry.url})
            # Another subject first, so the catalogue's ids are not 1, 2, ... (what an empty
            # registry would hand out again).
            client.register_schema("other-value", Schema('{"type":"string"}', "AVRO"))
            frames: list[tuple[bytes, dict[str, object]]] = []
            cache = SchemaCache(client)
            for partner, event_type, event in Simulation(seed=19, people=50).events(60):
                et = catalogue.event_type(event_type)
                record = prepare_event(catalogue, partner, event_type, event)
                schema_id = cache.id_for(topics.value_subject(topics.raw(partner, event_type)), et.schema)
                frames.append((encode(et.parsed, schema_id, record), record))
            before = _state(client)
        finally:
            registry.stop()

        broker.stop()
        broker.start()  # same address, nothing kept: no `_schemas` topic

        registry = EmbeddedRegistry(broker.bootstrap, port=0, copy_path=copy).start()
        try:
            fresh = SchemaRegistryClient({"url": registry.url})
            assert _state(fresh) == before  # nothing else registered here meanwhile
            cache = SchemaCache(fresh)
            for data, record in frames:
                _, decoded = decode(data, cache)
                assert json.dumps(decoded, sort_keys=True, default=str) == json.dumps(
                    record, sort_keys=True, default=str
                )
            known = max(i for versions in before.values() for i in versions.values())
            new_id = fresh.register_schema(f"new-{uuid.uuid4().hex[:6]}-value", Schema('"long"', "AVRO"))
            assert new_id > known
        finally:
            registry.stop()

        # The records went back into the topic: a registry without a copy reads them from there.
        from_topic = EmbeddedRegistry(broker.bootstrap).start()
        try:
            state = _state(SchemaRegistryClient({"url": from_topic.url}))
            assert _kept(before, state) == {}
        finally:
            from_topic.stop()
    finally:
        broker.stop()


def test_the_bus_carries_on_after_a_broker_replacement(tmp_path: Path) -> None:
    """A running worker, then an empty broker at the same address: the registry (restarted) keeps
    its ids, new events are decided, and the ledger verifies against PostgreSQL across the loss."""
    port = free_port()
    broker = Tansu(port=port, log_path=tmp_path / "tansu.log")
    with open_stack(tmp_path / "bus", broker=broker, topic_check_seconds=2.0) as stack:
        settings = stack.settings
        worker = stack.start_worker()
        sim = Simulation(seed=1919, people=200)
        before = publish(settings, sim.events(150))
        wait_decided(settings, {p.event_id for p in before})
        before_ids = {p.event_id for p in before}
        wait_until(
            lambda: before_ids <= {e for e, _, _ in stored_decisions(settings.postgres_dsn)},
            60,
            "the decisions in PostgreSQL",
            0.5,
        )
        client = SchemaRegistryClient({"url": stack.registry.url})
        ids = _state(client)
        layout = {n: c for n, c in partition_counts(settings).items() if not n.startswith("_")}

        registry_port = stack.registry.port
        stack.registry.stop()
        broker.stop()
        broker.start()  # same address, nothing kept
        stack.registry = EmbeddedRegistry(
            broker.bootstrap, port=registry_port, copy_path=stack.registry.copy_path
        ).start()
        # (The worker may register an output schema meanwhile: only what was there must be kept.)
        assert _kept(ids, _state(SchemaRegistryClient({"url": stack.registry.url}))) == {}

        # The worker re-creates its topics (changelogs included) before partners publish again.
        # (Their partition counts are not asserted: a client naming a missing topic makes Tansu
        # auto-create it with 4 partitions, which can win the race for a single-partition topic.)
        def missing() -> set[str]:
            return set(layout) - set(partition_counts(settings))

        try:
            wait_until(lambda: not missing(), 30, "the worker to re-create its topics", 0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: still missing {sorted(missing())}") from None

        after = publish(settings, sim.events(150))
        after_ids = {p.event_id for p in after}
        try:
            wait_decided(settings, after_ids, timeout=90)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; worker errors: {sorted(set(tracebacks(worker.log())))[:3]}"
            ) from None
        wait_until(
            lambda: after_ids <= {e for e, _, _ in stored_decisions(settings.postgres_dsn)},
            60,
            "the new decisions in PostgreSQL",
            0.5,
        )
        result = stack.sharebus("audit", "verify", "--against-db")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "continue from PostgreSQL after an epoch record" in result.stdout

        # The record an epoch links to, altered in PostgreSQL: the chain no longer holds.
        epoch = next(r for r in audit_records(settings) if r.get("kind") == "epoch")
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            changed = conn.execute(
                "UPDATE audit_decisions SET record = jsonb_set(record, '{reason}', '\"altered\"') "
                "WHERE chain = %s AND seq = %s",
                (epoch["chain"], epoch["seq"] - 1),
            ).rowcount
        assert changed == 1
        result = stack.sharebus("audit", "verify", "--against-db", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        breaks = json.loads(result.stdout)["breaks"]
        assert [(b["chain"], b["seq"]) for b in breaks] == [(epoch["chain"], epoch["seq"])]
        assert "does not match its hash" in breaks[0]["problem"]
        assert worker.proc.poll() is None
        assert crash_lines(worker.log()) == []
