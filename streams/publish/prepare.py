"""Preparation of one event before it leaves the partner (pure: no broker, no registry).

The envelope is completed: `event_type`, `source_partner`, `recorded_at` (now), `schema_version`,
and `event_id`: the partner's own if given, else derived from the record key the catalogue
declares (`streams.publish.record_ids`), else, when a key field is empty, a random one (such a row
has no stable identity, and the publisher reports it). Values are coerced (`streams.publish.coerce`)
and every problem is collected, so a partner learns about all bad fields of a row at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fastavro.validation import validate

from streams.avro.catalogue import Catalogue
from streams.avro.formats import checker_for
from streams.errors import ValidationError
from streams.publish.coerce import coercer, plain
from streams.publish.record_ids import RecordIds

__all__ = ["EventInvalid", "IdSource", "Prepared", "prepare", "prepare_event"]

IdSource = Literal["given", "record_key", "random"]


class EventInvalid(ValidationError):
    """Every problem found in one event; `field`/`reason` are the first, `problems` all of them."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(*problems[0])
        self.problems = list(problems)
        self.args = ("; ".join(f"{f}: {r}" for f, r in self.problems),)


@dataclass(frozen=True)
class Prepared:
    """A record ready to serialize, and where its event id came from."""

    record: dict[str, Any]
    id_source: IdSource


def prepare_event(
    catalogue: Catalogue,
    partner: str,
    event_type: str,
    event: Any,
    now: datetime | None = None,
    ids: RecordIds | None = None,
) -> dict[str, Any]:
    """The record to write, envelope completed and values coerced; EventInvalid lists all problems."""
    return prepare(catalogue, partner, event_type, event, now, ids).record


def prepare(
    catalogue: Catalogue,
    partner: str,
    event_type: str,
    event: Any,
    now: datetime | None = None,
    ids: RecordIds | None = None,
) -> Prepared:
    """`prepare_event`, also saying whether the id was given, derived from the record key or random."""
    p = catalogue.partner(partner)
    if event_type not in p.event_types:
        raise ValidationError("envelope.event_type", f"partner {partner} does not publish {event_type}")
    et = catalogue.event_type(event_type)
    data = plain(event)
    if not isinstance(data, Mapping):
        raise ValidationError("", f"an event must be a mapping or pydantic model, not {type(event).__name__}")
    problems: list[tuple[str, str]] = []
    data = dict(data)
    env = plain(data.get("envelope") or {})
    env = dict(env) if isinstance(env, Mapping) else {}
    for key, bound in (("event_type", event_type), ("source_partner", partner)):
        given = env.get(key)
        if given not in (None, "", bound):
            problems.append((f"envelope.{key}", f"refused: {given!r} but this publisher is {bound}"))
        env[key] = bound
    source: IdSource = "given"
    if env.get("event_id") in (None, ""):
        source = "random"
        env["event_id"] = str(uuid.uuid4())  # replaced below when the record key is complete
    if env.get("recorded_at") in (None, ""):
        env["recorded_at"] = now or datetime.now(UTC)
    if env.get("schema_version") in (None, ""):
        env["schema_version"] = et.version
    data["envelope"] = env
    record = coercer(et).value(et.parsed, data, "", problems)
    problems += checker_for(et)(record) if not problems else []  # LSOA codes, URNs, ...: formats.py
    if problems:
        raise EventInvalid(problems)
    if source == "random" and ids is not None and et.record_key:
        derived = ids.event_id(partner, et, record)  # from coerced values: "03/03/2025" == 2025-03-03
        if derived is not None:
            record["envelope"]["event_id"], source = derived, "record_key"
    if not validate(record, et.parsed, raise_errors=False):  # cheap check; details only on failure
        try:
            validate(record, et.parsed, raise_errors=True)
        except Exception as exc:  # our coercion should make this unreachable; keep fastavro's word
            raise EventInvalid([("(event)", f"fastavro validation failed: {exc}")]) from None
    return Prepared(record, source)
