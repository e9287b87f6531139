"""An in-memory schema registry for `streams.avro.serde.SchemaCache`: the unit tests' registry.

It answers as confluent-kafka's `SchemaRegistryClient` does where the cache looks: `get_schema`
returns an object with `schema_str` or raises an error carrying `http_status_code` 404 for an id
it does not know; `down = True` makes it raise as an unreachable registry does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class _Schema:
    schema_str: str


class NotFound(Exception):
    http_status_code = 404


class MemoryRegistry:
    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.ids: dict[tuple[str, str], int] = {}
        self.down = False
        self.fetches = 0

    def add(self, schema: dict[str, Any]) -> int:
        """Store a writer schema as a producer's serialiser would; returns its id."""
        text = json.dumps(schema, sort_keys=True)
        for schema_id, known in self.by_id.items():
            if known == text:
                return schema_id
        schema_id = len(self.by_id) + 1
        self.by_id[schema_id] = text
        return schema_id

    def get_schema(self, schema_id: int) -> _Schema:
        self.fetches += 1
        if self.down:
            raise ConnectionError("registry unreachable")
        if schema_id not in self.by_id:
            raise NotFound(f"Schema {schema_id} not found")
        return _Schema(self.by_id[schema_id])

    def register_schema(self, subject: str, schema: Any) -> int:
        if self.down:
            raise ConnectionError("registry unreachable")
        key = (subject, schema.schema_str)
        if key not in self.ids:
            self.ids[key] = self.add(json.loads(schema.schema_str))
        return self.ids[key]

    def get_subjects(self) -> list[str]:
        if self.down:
            raise ConnectionError("registry unreachable")
        return sorted({s for s, _ in self.ids})
