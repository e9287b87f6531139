"""A broker replaced by an empty one (the embedded, in-memory Tansu restarted): what survives.

The in-memory broker keeps nothing, so each component keeps what it must outside it: the registry
a copy of its `_schemas` records (re-seeded into the empty topic with the same ids), the audit
ledger its chain heads in PostgreSQL (continued with an explicit epoch record).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache, decode, encode
from streams.kafka.broker import free_port
from streams.publish.publisher import prepare_event
from streams.publish.simulate import Simulation
from streams.registry import EmbeddedRegistry
from streams.settings import Settings
from tests.support.stack import Tansu

pytestmark = pytest.mark.slow


def _state(client: SchemaRegistryClient) -> dict[str, object]:
    subjects = sorted(client.get_subjects())
    versions = {s: client.get_versions(s) for s in subjects}
    return {
        "versions": versions,
        "ids": {s: [client.get_version(s, v).schema_id for v in vs] for s, vs in versions.items()},
    }


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
            assert _state(fresh) == before
            cache = SchemaCache(fresh)
            for data, record in frames:
                _, decoded = decode(data, cache)
                assert json.dumps(decoded, sort_keys=True, default=str) == json.dumps(
                    record, sort_keys=True, default=str
                )
            known = max(i for ids in before["ids"].values() for i in ids)  # type: ignore[attr-defined]
            new_id = fresh.register_schema(f"new-{uuid.uuid4().hex[:6]}-value", Schema('"long"', "AVRO"))
            assert new_id > known
        finally:
            registry.stop()

        # The records went back into the topic: a registry without a copy reads them from there.
        from_topic = EmbeddedRegistry(broker.bootstrap).start()
        try:
            state = _state(SchemaRegistryClient({"url": from_topic.url}))
            assert {s: v for s, v in state["ids"].items() if not s.startswith("new-")} == before["ids"]  # type: ignore[attr-defined]
        finally:
            from_topic.stop()
    finally:
        broker.stop()
