"""The registry's in-memory state, built only by applying `_schemas` records in log order.

Replaying the topic at start and applying a record just written go through the same `apply`, so
a restarted registry serves exactly the ids, versions and configs it served before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.registry.avro import InvalidSchema, Reference, canonical_key
from streams.registry.records import (
    ConfigRecord,
    DeleteSubjectRecord,
    Record,
    SchemaRecord,
    SchemaTombstone,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredSchema:
    """A schema under a global id, with its text exactly as first registered."""

    id: int
    text: str
    references: tuple[Reference, ...]
    canonical: str
    schema_type: str


@dataclass(frozen=True)
class Version:
    subject: str
    version: int
    id: int
    deleted: bool


@dataclass
class RegistryState:
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    ids_by_key: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, dict[int, Version]] = field(default_factory=dict)
    configs: dict[str | None, str] = field(default_factory=dict)
    max_id: int = 0

    def apply_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.apply(record)

    def apply(self, record: Record) -> None:
        if isinstance(record, SchemaRecord):
            self._apply_schema(record)
        elif isinstance(record, SchemaTombstone):
            self._drop_version(record.subject, record.version)
        elif isinstance(record, ConfigRecord):
            if record.level is None:
                self.configs.pop(record.subject, None)
            else:
                self.configs[record.subject] = record.level
        elif isinstance(record, DeleteSubjectRecord):
            for v in list(self.subjects.get(record.subject, {}).values()):
                if v.version <= record.version:
                    self.subjects[record.subject][v.version] = Version(v.subject, v.version, v.id, True)

    def _apply_schema(self, r: SchemaRecord) -> None:
        # The id counter never goes back, even past ids whose versions were later hard-deleted.
        self.max_id = max(self.max_id, r.id)
        try:
            key = canonical_key(r.schema, r.references)
        except InvalidSchema:
            log.warning("skipping unparseable schema id %s (%s v%s)", r.id, r.subject, r.version)
            return
        existing = self.schemas.get(r.id)
        if existing is not None and existing.canonical != key:
            log.warning("id %s is already another schema; ignoring %s v%s", r.id, r.subject, r.version)
            return
        if existing is None:
            self.schemas[r.id] = StoredSchema(r.id, r.schema, r.references, key, r.schema_type)
            self.ids_by_key.setdefault(key, r.id)
        previous = self.subjects.get(r.subject, {}).get(r.version)
        self.subjects.setdefault(r.subject, {})[r.version] = Version(r.subject, r.version, r.id, r.deleted)
        if previous is not None and previous.id != r.id:
            self._forget_if_unused(previous.id)

    def _drop_version(self, subject: str, version: int) -> None:
        versions = self.subjects.get(subject, {})
        gone = versions.pop(version, None)
        if not versions:
            self.subjects.pop(subject, None)
        if gone is not None:
            self._forget_if_unused(gone.id)

    def _forget_if_unused(self, schema_id: int) -> None:
        """A schema no version refers to any more (all hard-deleted) stops being served."""
        if any(v.id == schema_id for vs in self.subjects.values() for v in vs.values()):
            return
        stored = self.schemas.pop(schema_id, None)
        if stored is not None and self.ids_by_key.get(stored.canonical) == schema_id:
            del self.ids_by_key[stored.canonical]

    # Queries -----------------------------------------------------------------------------------

    def versions(self, subject: str, *, deleted: bool = False) -> list[Version]:
        """Versions of `subject`, ascending; soft-deleted ones only when `deleted`."""
        vs = self.subjects.get(subject, {})
        return [vs[n] for n in sorted(vs) if deleted or not vs[n].deleted]

    def subject_names(self, *, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, deleted=deleted))

    def versions_of_id(self, schema_id: int, *, deleted: bool = False) -> list[Version]:
        return [
            v for s in sorted(self.subjects) for v in self.versions(s, deleted=deleted) if v.id == schema_id
        ]

    def next_version(self, subject: str) -> int:
        """Versions are never reused while any (even soft-deleted) version remains."""
        return max(self.subjects.get(subject, {}), default=0) + 1
