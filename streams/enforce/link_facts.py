"""What the enforcer tells the linker and the views about one event: tokens, factors, area.

One record per (event, subject) on `link.identifiers` (see docs/contracts.md). Only keyed tokens
in the bus-internal linkage domain, factor names and coarse areas leave the enforcer this way;
raw identifiers never do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from streams import metrics
from streams.avro.catalogue import Catalogue
from streams.linkage.tokens import linkage_tokens, primary_token
from streams.pg import retry_while_down
from streams.privacy.identifiers import SUBJECT_FIELDS
from streams.privacy.keys import KeyRing
from streams.privacy.vault import Vault, copy_prefix
from streams.settings import Settings
from streams.views.factors import load_factors

_IDENTITY_FIELDS = SUBJECT_FIELDS

VaultRow = tuple[str, str]  # a subject's `copy_prefix`, event id
# (partner, event type, event) -> (one record per subject, the vault rows they need)
LinkFacts = Callable[[str, str, Mapping[str, Any]], tuple[list[dict[str, Any]], list[VaultRow]]]


@lru_cache(maxsize=1024)
def _invalid_counter(kind: str, partner: str) -> Any:
    """The labelled child, looked up once (`labels()` costs ~3 us a call)."""
    return metrics.INVALID_IDENTIFIERS.labels(kind=kind, partner=partner)


def _is_mapping(value: Any) -> bool:
    """isinstance(value, Mapping), with plain dicts (decoded Avro) first: ABC checks are slow."""
    return type(value) is dict or isinstance(value, Mapping)


def subject_of(event: Mapping[str, Any], subject_index: int) -> Mapping[str, Any] | None:
    """The Subject record a fact is about: `people[i].subject` where the event lists people."""
    people = event.get("people")
    if isinstance(people, list):
        if 0 <= subject_index < len(people):
            person = people[subject_index]
            subject = person.get("subject") if _is_mapping(person) else None
            return subject if _is_mapping(subject) else None
        return None
    subject = event.get("subject")
    return subject if _is_mapping(subject) else None


def write_vault_rows(vault: Vault, rows: list[VaultRow], backoff: float = 1.0) -> None:
    """Write `rows`, retrying while PostgreSQL is unavailable (never drops them); other errors raise.

    The enforcer is the only component that sees raw identifiers, so it is the one that fills the
    vault: a batch's rows are written while its outputs are delivered, and its offsets are committed
    only once both are confirmed, so a crash replays the batch (an idempotent write) and never
    leaves a shared token the owner cannot resolve.
    """
    if rows:
        retry_while_down(lambda: vault.record_prepared(rows), what="vault write", backoff=backoff)


def make_link_facts(settings: Settings, catalogue: Catalogue, keyring: KeyRing) -> LinkFacts:
    """Compile the factor catalogue once and return the per-event function."""
    extractor = load_factors(settings.factors_path, catalogue)
    # Linkage tokens under a new key would never match old ones: pin one key for linkage, so a
    # rotation changes recipients' tokens (new tokens only) but never splits a person in two.
    linkage_kid = settings.linkage_key_id or keyring.ids[0]
    keyring.require(linkage_kid)  # fail closed at start when the pinned key is missing

    # The same people recur across events and partners: tokens and vault lines are a pure function
    # of (partner, identifiers), so a bounded cache spares most of their HMACs and normalisation.
    @lru_cache(maxsize=65536)
    def tokens_of(partner: str, identity: tuple[Any, ...]) -> tuple[dict[str, str], list[str], str]:
        subject = dict(zip(_IDENTITY_FIELDS, identity, strict=True))
        tokens, invalid = linkage_tokens(subject, partner, keyring, kid=linkage_kid)
        primary = primary_token(tokens)
        vault_line = copy_prefix(partner, primary, subject) if primary else ""
        return tokens, invalid, vault_line

    def link_facts(
        partner: str, event_type: str, event: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], list[VaultRow]]:
        envelope = event["envelope"]
        event_id = str(envelope["event_id"])
        occurred = envelope["occurred_at"]
        occurred_iso = occurred.isoformat() if isinstance(occurred, datetime) else str(occurred)
        records = []
        rows: list[VaultRow] = []
        for fact in extractor.extract(event_type, event):
            subject = subject_of(event, fact.subject_index)
            tokens: dict[str, str] = {}
            invalid: list[str] = []
            if subject is not None:
                tokens, invalid, vault_line = tokens_of(
                    partner, tuple([subject.get(f) for f in _IDENTITY_FIELDS])
                )
                for kind in invalid:
                    _invalid_counter(kind, partner).inc()
                if vault_line:
                    rows.append((vault_line, event_id))
            records.append(
                {
                    "event_id": event_id,
                    "subject_index": fact.subject_index,
                    "event_type": event_type,
                    "source_partner": partner,
                    "occurred_at": occurred_iso,
                    "role": fact.role,
                    "tokens": tokens,
                    "invalid": invalid,
                    "factors": fact.factors,  # a tuple: serialised as a JSON array
                    "area": {"lsoa": fact.lsoa, "district": fact.district},
                }
            )
        return records, rows

    return link_facts
