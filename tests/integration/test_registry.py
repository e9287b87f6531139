"""The embedded registry through confluent-kafka's own client and serializers, on the real broker.

Subjects and topics are unique per test (the broker and the session registry are shared); tests
that change global state or restart a registry use an EmbeddedRegistry of their own on its own
schemas topic.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.reader import read_to_end
from streams.registry import EmbeddedRegistry
from streams.settings import Settings

HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def subject_record(*extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Subject",
        "namespace": "sharingbus",
        "fields": [
            {"name": "nhs_number", "type": ["null", "string"], "default": None, "pii": "direct"},
            {"name": "given_name", "type": "string", "pii": "direct", "identifier": "name"},
            *extra,
        ],
    }


def event_schema(*subject_extra: dict[str, Any], extra: tuple[dict[str, Any], ...] = ()) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "CrimeRecorded",
            "namespace": "sharingbus.events",
            "doc": "A crime recorded by a police force.",
            "fields": [
                {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "subject", "type": ["null", subject_record(*subject_extra)], "default": None},
                *extra,
            ],
        }
    )


V1 = event_schema()
V2 = event_schema(extra=({"name": "offence_code", "type": "string", "default": "unknown"},))
BREAKING = event_schema({"name": "postcode", "type": "string", "pii": "quasi"})


def avro(text: str) -> Schema:
    return Schema(text, "AVRO")


def unique(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(registry: EmbeddedRegistry) -> Iterator[SchemaRegistryClient]:
    c = SchemaRegistryClient({"url": registry.url})
    yield c
    c.close()


@pytest.fixture
def own_registry(broker: EmbeddedBroker) -> Iterator[EmbeddedRegistry]:
    """A registry of this test's own (own schemas topic), free to change global config or restart."""
    with EmbeddedRegistry(broker.bootstrap, topic=unique("_schemas")) as reg:
        yield reg


def round_trip(client: SchemaRegistryClient, bootstrap: str, schema_text: str, value: dict[str, Any]) -> Any:
    """Serialize with the registry, produce to a new topic, read it back, deserialize."""
    topic = unique("registry")
    ensure_topics(Settings(bootstrap_servers=bootstrap), [TopicSpec(topic, 1)])
    ctx = SerializationContext(topic, MessageField.VALUE)
    payload = AvroSerializer(client, schema_text)(value, ctx)
    assert payload is not None
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, value=payload)
    assert producer.flush(10) == 0
    [msg] = list(read_to_end({"bootstrap.servers": bootstrap}, topic, timeout=20))
    raw = msg.value()
    assert raw is not None and raw[0] == 0  # Confluent framing: magic byte, then the schema id
    # The consumer side has its own client, as another process would: it must ask the registry.
    with SchemaRegistryClient(client.config()) as reader_client:
        decoded = AvroDeserializer(reader_client)(raw, ctx)
    decoded["event_id"] = str(decoded["event_id"])  # fastavro reads logicalType uuid as uuid.UUID
    return int.from_bytes(raw[1:5], "big"), decoded


def test_serialize_produce_consume_deserialize(
    client: SchemaRegistryClient, broker: EmbeddedBroker, registry: EmbeddedRegistry
) -> None:
    value = {"event_id": str(uuid.uuid4()), "subject": {"nhs_number": "9434765919", "given_name": "Ada"}}
    schema_id, decoded = round_trip(client, broker.bootstrap, V1, value)
    assert decoded == value
    # The registry (not the client's cache) returns the schema exactly as registered.
    response = httpx.get(f"{registry.url}/schemas/ids/{schema_id}")
    assert response.json()["schema"] == V1
    stored = json.loads(response.json()["schema"])
    assert stored["doc"] == "A crime recorded by a police force."
    assert stored["fields"][1]["type"][1]["fields"][0]["pii"] == "direct"
    assert response.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")


def test_incompatible_change_is_refused_and_compatible_one_gets_version_2(
    client: SchemaRegistryClient,
) -> None:
    subject = f"{unique()}-value"
    first = client.register_schema(subject, avro(V1))
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, avro(BREAKING))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 409
    assert "reader field 'subject.postcode' has no default" in refused.value.error_message
    second = client.register_schema(subject, avro(V2))
    latest = client.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, second)
    assert second != first
    assert client.get_versions(subject) == [1, 2]
    assert client.get_version(subject, 1).schema_id == first


def test_compatibility_endpoint_explains_with_verbose(
    client: SchemaRegistryClient, registry: EmbeddedRegistry
) -> None:
    subject = f"{unique()}-value"
    client.register_schema(subject, avro(V1))
    assert client.test_compatibility(subject, avro(V2)) is True
    assert client.test_compatibility(subject, avro(BREAKING), version=1) is False
    url = f"{registry.url}/compatibility/subjects/{subject}/versions/latest"
    body = {"schema": BREAKING, "schemaType": "AVRO", "references": []}
    verbose = httpx.post(url, params={"verbose": "true"}, json=body, headers=HEADERS).json()
    assert verbose["is_compatible"] is False
    assert any("'subject.postcode'" in m for m in verbose["messages"])
    assert "messages" not in httpx.post(url, json=body, headers=HEADERS).json()
    missing = httpx.post(
        f"{registry.url}/compatibility/subjects/{subject}/versions/7", json=body, headers=HEADERS
    )
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40402)


def test_same_schema_gets_the_same_id_within_and_across_subjects(client: SchemaRegistryClient) -> None:
    first, other = f"{unique()}-value", f"{unique()}-value"
    schema_id = client.register_schema(first, avro(V1))
    assert client.register_schema(first, avro(V1)) == schema_id
    reformatted = json.dumps(json.loads(V1), indent=2)
    assert client.register_schema(other, avro(reformatted)) == schema_id
    assert client.get_versions(first) == [1]
    found = client.lookup_schema(other, avro(V1))
    assert (found.version, found.schema_id) == (1, schema_id)
    assert set(client.get_subjects_by_schema_id(schema_id)) >= {first, other}
    assert {(v.subject, v.version) for v in client.get_schema_versions(schema_id)} >= {(first, 1), (other, 1)}
    with pytest.raises(SchemaRegistryError) as not_there:
        client.lookup_schema(first, avro(V2))
    assert (not_there.value.http_status_code, not_there.value.error_code) == (404, 40403)


@pytest.mark.parametrize(
    ("text", "schema_type", "named_problem"),
    [
        (
            '{"type": "record", "name": "R", "fields": [{"name": "n", "type": "int", "default": "x"}]}',
            "AVRO",
            "Default value <x>",
        ),
        ('{"type": "record", "name": "R", "fields": [{"name": "n", "type": "strnig"}]}', "AVRO", "'strnig'"),
        ('{"type": "record", "name": "R", "fields": [', "AVRO", "not valid JSON"),
        ('{"type": "object"}', "JSON", "only AVRO"),
    ],
)
def test_malformed_schema_is_422_naming_the_problem(
    client: SchemaRegistryClient, text: str, schema_type: str, named_problem: str
) -> None:
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema(f"{unique()}-value", Schema(text, schema_type))
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42201)
    assert named_problem in invalid.value.error_message


def test_errors_use_confluent_codes(client: SchemaRegistryClient, registry: EmbeddedRegistry) -> None:
    subject = f"{unique()}-value"
    with pytest.raises(SchemaRegistryError) as no_subject:
        client.get_latest_version(subject)
    assert (no_subject.value.http_status_code, no_subject.value.error_code) == (404, 40401)
    client.register_schema(subject, avro(V1))
    with pytest.raises(SchemaRegistryError) as no_version:
        client.get_version(subject, 9)
    assert no_version.value.error_code == 40402
    with pytest.raises(SchemaRegistryError) as no_schema:
        client.get_schema(999_999)
    assert no_schema.value.error_code == 40403
    bad_version = httpx.get(f"{registry.url}/subjects/{subject}/versions/zero")
    assert (bad_version.status_code, bad_version.json()["error_code"]) == (422, 42202)
    text = httpx.get(f"{registry.url}/subjects/{subject}/versions/latest/schema").text
    assert json.loads(text) == json.loads(V1)


def test_subject_config_overrides_global(client: SchemaRegistryClient, registry: EmbeddedRegistry) -> None:
    subject = f"{unique()}-value"
    client.register_schema(subject, avro(V1))
    config_url = f"{registry.url}/config/{subject}"
    unset = httpx.get(config_url)
    assert (unset.status_code, unset.json()["error_code"]) == (404, 40408)
    assert httpx.get(config_url, params={"defaultToGlobal": "true"}).json() == {
        "compatibilityLevel": "BACKWARD"
    }
    assert client.set_compatibility(subject, "none") == {"compatibility": "NONE"}
    assert client.get_compatibility(subject) == "NONE"
    client.register_schema(subject, avro(BREAKING))  # accepted under NONE
    assert client.get_versions(subject) == [1, 2]
    assert httpx.delete(config_url).json() == {"compatibilityLevel": "NONE"}
    assert httpx.get(config_url).json()["error_code"] == 40408
    invalid = httpx.put(config_url, json={"compatibility": "SIDEWAYS"}, headers=HEADERS)
    assert (invalid.status_code, invalid.json()["error_code"]) == (422, 42203)


def test_global_config_applies_to_every_subject(own_registry: EmbeddedRegistry) -> None:
    client = SchemaRegistryClient({"url": own_registry.url})
    forward, full = f"{unique()}-value", f"{unique()}-value"
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(level="FORWARD")
    client.register_schema(forward, avro(V1))
    # A new required field: old readers ignore it (FORWARD accepts), new readers lack it in old data.
    client.register_schema(forward, avro(BREAKING))
    assert client.get_versions(forward) == [1, 2]
    client.set_compatibility(level="FULL")
    client.register_schema(full, avro(V1))
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(full, avro(BREAKING))
    assert refused.value.error_code == 409 and "FULL" in refused.value.error_message
    default = httpx.get(f"{own_registry.url}/config/{full}", params={"defaultToGlobal": "true"})
    assert default.json() == {"compatibilityLevel": "FULL"}
    assert httpx.delete(f"{own_registry.url}/config").json() == {"compatibilityLevel": "FULL"}
    assert client.get_compatibility() == "BACKWARD"


def test_soft_and_permanent_deletes(client: SchemaRegistryClient, registry: EmbeddedRegistry) -> None:
    subject = f"{unique()}-value"
    first = client.register_schema(subject, avro(V1))
    client.register_schema(subject, avro(V2))
    with pytest.raises(SchemaRegistryError) as not_soft:
        client.delete_subject(subject, permanent=True)
    assert not_soft.value.error_code == 40405
    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_versions(subject)
    assert gone.value.error_code == 40401
    assert client.get_schema(first).schema_str == V1  # soft-deleted schemas still decode old data
    # Registering again continues the version sequence and reuses the id (a fresh client: the
    # first one caches what it registered and would not ask).
    client = SchemaRegistryClient({"url": registry.url})
    assert client.register_schema(subject, avro(V1)) == first
    assert client.get_latest_version(subject).version == 3
    client.delete_subject(subject)
    assert client.delete_subject(subject, permanent=True) == [1, 2, 3]
    assert subject not in client.get_subjects(deleted=True)
    response = httpx.delete(f"{registry.url}/subjects/{subject}")
    assert (response.status_code, response.json()["error_code"]) == (404, 40401)


def test_references_resolve_named_types_from_other_subjects(client: SchemaRegistryClient) -> None:
    shared, event = f"{unique()}-value", f"{unique()}-value"
    client.register_schema(shared, avro(json.dumps(subject_record())))
    using = json.dumps(
        {
            "type": "record",
            "name": "Referral",
            "namespace": "sharingbus.events",
            "fields": [{"name": "subject", "type": "sharingbus.Subject"}],
        }
    )
    ref = SchemaReference("sharingbus.Subject", shared, 1)
    schema_id = client.register_schema(event, Schema(using, "AVRO", [ref]))
    registered = client.get_version(event, 1)
    assert registered.schema_id == schema_id
    assert [(r.name, r.subject, r.version) for r in registered.schema.references or []] == [
        ("sharingbus.Subject", shared, 1)
    ]
    with pytest.raises(SchemaRegistryError) as unresolved:
        client.register_schema(f"{unique()}-value", Schema(using, "AVRO"))
    assert unresolved.value.error_code == 42201 and "sharingbus.Subject" in unresolved.value.error_message


def test_restart_keeps_ids_versions_config_and_deletes(broker: EmbeddedBroker) -> None:
    topic = unique("_schemas")
    a, b, gone = f"{unique()}-value", f"{unique()}-value", f"{unique()}-value"
    with EmbeddedRegistry(broker.bootstrap, topic=topic) as first:
        client = SchemaRegistryClient({"url": first.url})
        ids = [client.register_schema(a, avro(V1)), client.register_schema(a, avro(V2))]
        ids.append(client.register_schema(b, avro(BREAKING)))
        client.register_schema(gone, avro(V1))
        client.set_compatibility(b, "FULL_TRANSITIVE")
        client.delete_subject(gone)
        client.delete_version(a, 1)
    with EmbeddedRegistry(broker.bootstrap, topic=topic) as second:
        client = SchemaRegistryClient({"url": second.url})
        assert [client.get_schema(i).schema_str for i in ids] == [V1, V2, BREAKING]
        assert client.get_versions(a) == [2] and client.get_versions(a, deleted=True) == [1, 2]
        assert client.get_latest_version(b).schema_id == ids[2]
        assert client.get_compatibility(b) == "FULL_TRANSITIVE"
        assert gone not in client.get_subjects() and gone in client.get_subjects(deleted=True)
        assert client.register_schema(a, avro(V2)) == ids[1]
        postcode = {"name": "postcode", "type": "string", "pii": "quasi"}
        upn = {"name": "upn", "type": ["null", "string"], "default": None}
        fresh = client.register_schema(b, avro(event_schema(postcode, upn)))
        assert fresh == max(ids) + 1  # ids keep increasing across restarts


def test_cli_registry_serves_a_confluent_client(broker: EmbeddedBroker) -> None:
    sharebus = Path(sys.executable).with_name("sharebus")
    proc = subprocess.Popen(
        [
            str(sharebus),
            "registry",
            "--port",
            "0",
            "--bootstrap",
            broker.bootstrap,
            "--topic",
            unique("_schemas"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = _wait_for_line(proc, "registry: ", timeout=30)
        assert url.startswith("http://127.0.0.1:")
        client = SchemaRegistryClient({"url": url})
        value = {"event_id": str(uuid.uuid4()), "subject": None}
        schema_id, decoded = round_trip(client, broker.bootstrap, V1, value)
        assert decoded == value
        assert client.get_schema(schema_id).schema_str == V1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0, proc.stderr.read() if proc.stderr else ""


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """The rest of the first stdout line starting with `prefix`; fails if the process dies first."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
            if not line and proc.poll() is not None:
                break
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    pytest.fail(f"no {prefix!r} line within {timeout}s (exit {proc.poll()}): {err}")
