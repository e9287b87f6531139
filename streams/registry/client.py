"""The bus's side of the schema registry: a client built from settings.

confluent-kafka's `SchemaRegistryClient` talks to the embedded registry, Confluent Schema Registry
or Karapace alike; `streams.avro.serde.SchemaCache` wraps it with the bus's one schema cache and
error contract.
"""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.settings import Settings


def registry_client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient(settings.registry_config())
