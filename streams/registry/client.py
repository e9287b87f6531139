"""The bus's side of the schema registry: writer schemas by id, and output schema registration.

Wraps confluent-kafka's `SchemaRegistryClient` (which caches), so the same code talks to the
embedded registry, Confluent Schema Registry or Karapace; `LookupError` means "the registry does
not know this id" and nothing else, so a registry outage is never mistaken for a bad event.
"""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams import metrics
from streams.settings import Settings


def registry_client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient(settings.registry_config())


# An id the registry does not know is asked about again only after this long, so a flood of records
# carrying a bogus id (poison, or a producer pointed at another registry) is not also a flood of
# registry requests on the enforcer's hot path. Ids are assigned before anything is written with
# them, so the wait never delays a genuine schema; a registry that lost its schemas and has them
# re-registered is seen again within this time.
UNKNOWN_ID_TTL_S = 30.0
UNKNOWN_IDS_MAX = 10_000  # remembered misses; the oldest is forgotten first


class RegistrySchemas:
    """Writer schemas by id and output-schema ids by subject, cached for the process lifetime;
    ids the registry does not know are remembered for `unknown_ttl_s`."""

    def __init__(self, client: SchemaRegistryClient, unknown_ttl_s: float = UNKNOWN_ID_TTL_S) -> None:
        self._client = client
        self._by_id: dict[int, dict[str, Any]] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._unknown: dict[int, tuple[float, str]] = {}  # id -> (when the registry said so, why)
        self._unknown_ttl_s = unknown_ttl_s

    def schema_for_id(self, schema_id: int) -> dict[str, Any]:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        missed = self._unknown.get(schema_id)
        if missed is not None:
            if time.monotonic() - missed[0] < self._unknown_ttl_s:
                raise LookupError(missed[1])
            del self._unknown[schema_id]
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            status = metrics.registry_status(exc.http_status_code)
            metrics.REGISTRY_REQUESTS.labels(operation="get_schema", status=status).inc()
            if exc.http_status_code == 404:
                raise LookupError(self._remember_unknown(schema_id, "not found")) from exc
            raise
        metrics.REGISTRY_REQUESTS.labels(operation="get_schema", status="ok").inc()
        parsed = json.loads(schema.schema_str or "null")
        if not isinstance(parsed, dict):
            raise LookupError(self._remember_unknown(schema_id, "is not an Avro record schema"))
        self._by_id[schema_id] = parsed
        return parsed

    def _remember_unknown(self, schema_id: int, why: str) -> str:
        message = f"schema id {schema_id} {why}"
        if len(self._unknown) >= UNKNOWN_IDS_MAX:
            del self._unknown[next(iter(self._unknown))]
        self._unknown[schema_id] = (time.monotonic(), message)
        return message

    def id_for(self, subject: str, schema: dict[str, Any]) -> int:
        text = json.dumps(schema, sort_keys=True)
        key = (subject, text)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        schema_id = self._client.register_schema(subject, Schema(text, "AVRO"))
        metrics.REGISTRY_REQUESTS.labels(operation="register", status="ok").inc()
        self._ids[key] = schema_id
        return schema_id

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when the registry answers (used by /ready)."""
        started = time.monotonic()
        try:
            self._client.get_subjects()
        except Exception:
            return False
        return time.monotonic() - started < timeout * 5
