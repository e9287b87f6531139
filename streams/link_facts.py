"""What the enforcer tells the linker and the views about one event: tokens, factors, area.

One record per (event, subject) on `link.identifiers` (see docs/contracts.md). Only keyed tokens
in the bus-internal linkage domain, factor names and coarse areas leave the enforcer this way;
raw identifiers never do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from streams import metrics
from streams.catalogue import Catalogue
from streams.factors import load_factors
from streams.keys import KeyRing
from streams.linkage_keys import linkage_tokens
from streams.settings import Settings

LinkFacts = Callable[[str, str, Mapping[str, Any]], list[dict[str, Any]]]


def subject_of(event: Mapping[str, Any], subject_index: int) -> Mapping[str, Any] | None:
    """The Subject record a fact is about: `people[i].subject` where the event lists people."""
    people = event.get("people")
    if isinstance(people, list):
        if 0 <= subject_index < len(people):
            person = people[subject_index]
            subject = person.get("subject") if isinstance(person, Mapping) else None
            return subject if isinstance(subject, Mapping) else None
        return None
    subject = event.get("subject")
    return subject if isinstance(subject, Mapping) else None


def make_link_facts(settings: Settings, catalogue: Catalogue, keyring: KeyRing) -> LinkFacts:
    """Compile the factor catalogue once and return the per-event function."""
    extractor = load_factors(settings.factors_path, catalogue)

    def link_facts(partner: str, event_type: str, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        envelope = event["envelope"]
        occurred = envelope["occurred_at"]
        occurred_iso = occurred.isoformat() if isinstance(occurred, datetime) else str(occurred)
        records = []
        for fact in extractor.extract(event_type, event):
            subject = subject_of(event, fact.subject_index)
            tokens: dict[str, str] = {}
            invalid: list[str] = []
            if subject is not None:
                tokens, invalid = linkage_tokens(subject, partner, keyring)
                for kind in invalid:
                    metrics.INVALID_IDENTIFIERS.labels(kind=kind, partner=partner).inc()
            records.append(
                {
                    "event_id": envelope["event_id"],
                    "subject_index": fact.subject_index,
                    "event_type": event_type,
                    "source_partner": partner,
                    "occurred_at": occurred_iso,
                    "role": fact.role,
                    "tokens": tokens,
                    "invalid": invalid,
                    "factors": list(fact.factors),
                    "area": {"lsoa": fact.lsoa, "district": fact.district},
                }
            )
        return records

    return link_facts
