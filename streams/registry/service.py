"""What each Confluent Schema Registry endpoint does, independent of HTTP.

Methods take the decoded request (path parameters, query flags, JSON body) and return the JSON
body to answer, or raise `RegistryError` with Confluent's status and error code. Semantics follow
Confluent's `KafkaSchemaRegistry` where the REST subset used by confluent-kafka needs them
(soft/hard deletes, version numbering, "latest", `defaultToGlobal`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.registry import errors
from streams.registry.avro import AVRO, AvroSchema, InvalidSchema, Reference, parse_avro
from streams.registry.compat import DEFAULT_LEVEL, CompatibilityLevel, check_compatibility
from streams.registry.records import ConfigRecord, Record, SchemaRecord, SchemaTombstone
from streams.registry.state import RegistryState, StoredSchema, Version
from streams.registry.store import SchemaStore

LATEST = -1
_MAX_VERSION = 2**31 - 1


def parse_version(raw: str) -> int:
    """A version path parameter: 1..2^31-1, or "latest"/-1 (LATEST); 42202 otherwise."""
    text = raw.strip().lower()
    if text == "latest":
        return LATEST
    try:
        number = int(text)
    except ValueError:
        raise errors.invalid_version(raw) from None
    if number == LATEST or 1 <= number <= _MAX_VERSION:
        return number
    raise errors.invalid_version(raw)


class RegistryService:
    """The registry's operations over a `SchemaStore` (thread-safe: every call holds its lock)."""

    def __init__(self, store: SchemaStore) -> None:
        self.store = store
        self._parsed: dict[int, AvroSchema] = {}

    @property
    def _state(self) -> RegistryState:
        return self.store.state

    # Schemas by id -----------------------------------------------------------------------------

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        with self.store.lock:
            return _schema_body(self._stored(schema_id))

    def get_schema_text(self, schema_id: int) -> str:
        with self.store.lock:
            return self._stored(schema_id).text

    def schema_subjects(self, schema_id: int, deleted: bool = False) -> list[str]:
        with self.store.lock:
            self._stored(schema_id)
            return sorted({v.subject for v in self._state.versions_of_id(schema_id, deleted=deleted)})

    def schema_versions(self, schema_id: int, deleted: bool = False) -> list[dict[str, Any]]:
        with self.store.lock:
            self._stored(schema_id)
            return [
                {"subject": v.subject, "version": v.version}
                for v in self._state.versions_of_id(schema_id, deleted=deleted)
            ]

    # Subjects ----------------------------------------------------------------------------------

    def subjects(self, prefix: str = "", deleted: bool = False, deleted_only: bool = False) -> list[str]:
        with self.store.lock:
            if deleted_only:
                live = set(self._state.subject_names())
                names = [s for s in self._state.subject_names(deleted=True) if s not in live]
            else:
                names = self._state.subject_names(deleted=deleted)
            return [s for s in names if s.startswith(prefix)]

    def versions(self, subject: str, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        with self.store.lock:
            found = self._state.versions(subject, deleted=deleted or deleted_only)
            if not found:
                raise errors.subject_not_found(subject)
            return [v.version for v in found if not deleted_only or v.deleted]

    def get_version(self, subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
        with self.store.lock:
            v = self._version(subject, parse_version(version), deleted=deleted)
            return _version_body(v, self._stored(v.id))

    def register(self, subject: str, body: Any) -> dict[str, Any]:
        """POST /subjects/{s}/versions: the existing id if registered here, else a checked new version."""
        text, references = _schema_request(body)
        with self.store.lock:
            schema = self._parse(text, references)
            live = self._state.versions(subject)
            for v in live:
                if self._state.schemas[v.id].canonical == schema.canonical:
                    return {"id": v.id}
            previous = [(v.version, self._parsed_id(v.id)) for v in live]
            problems = check_compatibility(self._level(subject), schema, previous)
            if problems:
                raise errors.incompatible_schema(subject, [*problems, self._level_note(subject)])
            schema_id = self._state.ids_by_key.get(schema.canonical) or self._state.max_id + 1
            version = self._state.next_version(subject)
            self.store.write([SchemaRecord(subject, version, schema_id, text, references)])
            return {"id": schema_id}

    def lookup(self, subject: str, body: Any, deleted: bool = False) -> dict[str, Any]:
        """POST /subjects/{s}: the version of `subject` holding this schema."""
        text, references = _schema_request(body)
        with self.store.lock:
            schema = self._parse(text, references)
            candidates = self._state.versions(subject, deleted=deleted)
            if not candidates:
                raise errors.subject_not_found(subject)
            for v in reversed(candidates):
                stored = self._state.schemas[v.id]
                if stored.canonical == schema.canonical:
                    return _version_body(v, stored)
            raise errors.schema_not_found()

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        with self.store.lock:
            everything = self._state.versions(subject, deleted=True)
            if not everything:
                raise errors.subject_not_found(subject)
            live = [v for v in everything if not v.deleted]
            records: list[Record]
            if permanent:
                if live:
                    raise errors.subject_not_soft_deleted(subject)
                records = [SchemaTombstone(subject, v.version) for v in reversed(everything)]
                if subject in self._state.configs:
                    records.append(ConfigRecord(subject, None))
                self.store.write(records)
                return [v.version for v in everything]
            if not live:
                raise errors.subject_soft_deleted(subject)
            self.store.write([self._soft_deleted(v) for v in live])
            return [v.version for v in live]

    def delete_version(self, subject: str, version: str, permanent: bool = False) -> int:
        number = parse_version(version)
        with self.store.lock:
            everything = self._state.versions(subject, deleted=True)
            if not everything:
                raise errors.subject_not_found(subject)
            if number == LATEST:
                pool = everything if permanent else [v for v in everything if not v.deleted]
                if not pool:
                    raise errors.subject_soft_deleted(subject)
                target = pool[-1]
            else:
                found = [v for v in everything if v.version == number]
                if not found:
                    raise errors.version_not_found(number)
                target = found[0]
            if permanent:
                if not target.deleted:
                    raise errors.version_not_soft_deleted(subject, target.version)
                records: list[Record] = [SchemaTombstone(subject, target.version)]
                if len(everything) == 1 and subject in self._state.configs:
                    records.append(ConfigRecord(subject, None))
                self.store.write(records)
            else:
                if target.deleted:
                    raise errors.version_soft_deleted(subject, target.version)
                self.store.write([self._soft_deleted(target)])
            return target.version

    # Compatibility -----------------------------------------------------------------------------

    def test_compatibility(
        self, subject: str, version: str | None, body: Any, verbose: bool = False
    ) -> dict[str, Any]:
        """POST /compatibility/subjects/{s}/versions[/{v}]: would `body` pass the subject's level?"""
        number = None if version is None else parse_version(version)
        with self.store.lock:
            live = self._state.versions(subject)
            if number is None:
                against = live
            elif number == LATEST:
                against = live[-1:]
            else:
                found = [v for v in live if v.version == number]
                if not found:
                    if not self._state.versions(subject, deleted=True):
                        raise errors.subject_not_found(subject)
                    raise errors.version_not_found(number)
                against = found
            try:
                text, references = _schema_request(body)
                schema = self._parse(text, references)
            except errors.RegistryError as exc:
                if not verbose or exc.error_code != 42201:
                    raise
                return {"is_compatible": False, "messages": [exc.message]}
            previous = [(v.version, self._parsed_id(v.id)) for v in against]
            messages = check_compatibility(self._level(subject), schema, previous)
            if messages:
                messages.append(self._level_note(subject))
            answer: dict[str, Any] = {"is_compatible": not messages}
            if verbose:
                answer["messages"] = messages
            return answer

    # Config ------------------------------------------------------------------------------------

    def get_config(self, subject: str | None = None, default_to_global: bool = False) -> dict[str, Any]:
        with self.store.lock:
            configs = self._state.configs
            if subject is None:
                return {"compatibilityLevel": configs.get(None, DEFAULT_LEVEL.value)}
            if subject in configs:
                return {"compatibilityLevel": configs[subject]}
            if default_to_global:
                return {"compatibilityLevel": configs.get(None, DEFAULT_LEVEL.value)}
            raise errors.compatibility_not_configured(subject)

    def set_config(self, subject: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise errors.bad_request("the request body must be a JSON object")
        raw = body.get("compatibility", body.get("compatibilityLevel"))
        level = CompatibilityLevel.parse(raw)
        if level is None:
            raise errors.invalid_compatibility_level()
        with self.store.lock:
            self.store.write([ConfigRecord(subject, level.value)])
        return {"compatibility": level.value}

    def delete_config(self, subject: str | None = None) -> dict[str, Any]:
        with self.store.lock:
            configs = self._state.configs
            if subject is not None and subject not in configs:
                raise errors.subject_not_found(subject)
            old = configs.get(subject, DEFAULT_LEVEL.value)
            if subject in configs:
                self.store.write([ConfigRecord(subject, None)])
            return {"compatibilityLevel": old}

    # Helpers -----------------------------------------------------------------------------------

    def _level(self, subject: str) -> CompatibilityLevel:
        configs = self._state.configs
        raw = configs.get(subject, configs.get(None, DEFAULT_LEVEL.value))
        return CompatibilityLevel.parse(raw) or DEFAULT_LEVEL

    def _level_note(self, subject: str) -> str:
        return f"{{compatibility: '{self._level(subject).value}'}}"

    def _stored(self, schema_id: int) -> StoredSchema:
        stored = self._state.schemas.get(schema_id)
        if stored is None:
            raise errors.schema_not_found(schema_id)
        return stored

    def _version(self, subject: str, number: int, deleted: bool = False) -> Version:
        found = self._state.versions(subject, deleted=deleted)
        if not found:
            raise errors.subject_not_found(subject)
        if number == LATEST:
            return found[-1]
        for v in found:
            if v.version == number:
                return v
        raise errors.version_not_found(number)

    def _parse(self, text: str, references: tuple[Reference, ...]) -> AvroSchema:
        """Parse a submitted schema with its references resolved; 42201 naming the problem if invalid."""
        referenced = []
        for ref in references:
            versions = self._state.versions(ref.subject)
            match = [v for v in versions if v.version == ref.version or ref.version == LATEST]
            if not match:
                raise errors.invalid_schema(
                    f"reference {ref.name!r} names subject {ref.subject!r} version {ref.version}, "
                    "which is not registered"
                )
            referenced.append(self._parsed_id(match[-1].id))
        try:
            return parse_avro(text, references, referenced)
        except InvalidSchema as exc:
            raise errors.invalid_schema(str(exc)) from exc

    def _parsed_id(self, schema_id: int) -> AvroSchema:
        if schema_id not in self._parsed:
            stored = self._stored(schema_id)
            self._parsed[schema_id] = self._parse(stored.text, stored.references)
        return self._parsed[schema_id]

    def _soft_deleted(self, v: Version) -> SchemaRecord:
        stored = self._stored(v.id)
        return SchemaRecord(v.subject, v.version, v.id, stored.text, stored.references, deleted=True)


def _schema_request(body: Any) -> tuple[str, tuple[Reference, ...]]:
    """The schema text and references of a register/lookup/compatibility request body."""
    if not isinstance(body, Mapping):
        raise errors.bad_request("the request body must be a JSON object")
    schema_type = body.get("schemaType") or AVRO
    if str(schema_type).upper() != AVRO:
        raise errors.invalid_schema(
            f"schemaType {schema_type!r} is not supported by this registry (only AVRO)"
        )
    text = body.get("schema")
    if not isinstance(text, str) or not text.strip():
        raise errors.invalid_schema('the request has no "schema" string')
    try:
        references = tuple(Reference.from_json(r) for r in body.get("references") or [])
    except InvalidSchema as exc:
        raise errors.invalid_schema(str(exc)) from exc
    return text, references


def _schema_body(stored: StoredSchema) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": stored.text}
    if stored.schema_type != AVRO:
        body["schemaType"] = stored.schema_type
    if stored.references:
        body["references"] = [r.to_json() for r in stored.references]
    return body


def _version_body(v: Version, stored: StoredSchema) -> dict[str, Any]:
    return {"subject": v.subject, "version": v.version, "id": v.id, **_schema_body(stored)}
