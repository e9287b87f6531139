"""The schema cache against the real embedded registry: ids the registry does not know are asked
about once per TTL, so a flood of records with a bogus id is not a flood of registry requests."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache, UnknownSchema
from streams.registry.client import registry_client
from streams.settings import Settings
from tests.support.stack import wait_until

UNKNOWN_ID = 987_654_321


def not_found_requests() -> float:
    value = REGISTRY.get_sample_value(
        "sharingbus_registry_requests_total", {"operation": "get_schema", "status": "not_found"}
    )
    return value or 0.0


def test_an_unknown_id_is_asked_once_per_ttl(settings_factory: Callable[..., Settings]) -> None:
    schemas = SchemaCache(registry_client(settings_factory()), unknown_ttl_s=1.0)
    before = not_found_requests()
    first_asked = time.monotonic()

    for _ in range(50):
        with pytest.raises(UnknownSchema, match=f"schema id {UNKNOWN_ID} is not in the registry"):
            schemas.schema(UNKNOWN_ID)
    assert not_found_requests() - before == 1  # 50 lookups, one request

    def asked_again() -> bool:
        with pytest.raises(UnknownSchema, match="is not in the registry"):
            schemas.schema(UNKNOWN_ID)
        return not_found_requests() - before >= 2

    # Looked up again and again: the registry is asked once more when the TTL has passed, not sooner.
    wait_until(asked_again, 5, "the registry to be asked again", interval=0.05)
    assert time.monotonic() - first_asked >= 1.0
    assert not_found_requests() - before == 2


def test_known_ids_are_unaffected_by_remembered_misses(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    schemas = SchemaCache(registry_client(settings), unknown_ttl_s=60.0)
    et = load_catalogue(settings.schemas_dir).event_type("police.crime_recorded")
    known = schemas.id_for("test-registry-schemas-value", et.schema)
    before = not_found_requests()

    with pytest.raises(UnknownSchema):
        schemas.schema(UNKNOWN_ID)
    assert schemas.schema(known)["name"] == et.schema["name"]
    with pytest.raises(UnknownSchema):  # still remembered, without asking
        schemas.schema(UNKNOWN_ID)
    assert not_found_requests() - before == 1
