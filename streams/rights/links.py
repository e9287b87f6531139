"""Finding a person's events: linkage tokens -> the linker's records in the vault -> event ids.

The vault's `vault_links` table (written by the linker) holds, per linked (event, subject), the
person token and the exact linkage tokens. A request naming a person is resolved through it: the
records carrying one of the person's tokens, then every record of the clusters (person tokens)
those belong to, which is how a person with an NHS number at one agency and a UPN at another is
found whole. Read-only here except `forget_events`, the partial erasure `Vault.forget` lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from streams.linkage.tokens import FUZZY_KINDS, linkage_tokens
from streams.privacy.keys import KeyRing
from streams.privacy.vault import delete_subjects

__all__ = ["LinkIndex", "LinkRow", "exact_tokens", "subject_tokens", "subjects_of"]


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One linked (event, subject) record."""

    event_id: str
    subject_index: int
    person_token: str
    tokens: tuple[str, ...]


def exact_tokens(tokens: Mapping[str, str]) -> list[str]:
    """Tokens that name one identifier (the fuzzy sets serve linkage only and never match exactly)."""
    return sorted(t for kind, t in tokens.items() if kind not in FUZZY_KINDS)


def subject_tokens(subject: Mapping[str, Any], partner: str, keyring: KeyRing, kid: str) -> list[str]:
    """Exact linkage tokens of identifiers as `partner` holds them (invalid ones give none)."""
    tokens, _ = linkage_tokens(subject, partner, keyring, kid=kid)
    return exact_tokens(tokens)


def subjects_of(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every Subject record an event is about (`subject`, or each `people[].subject`)."""
    people = event.get("people")
    if isinstance(people, list):
        return [
            p["subject"] for p in people if isinstance(p, Mapping) and isinstance(p.get("subject"), Mapping)
        ]
    subject = event.get("subject")
    return [subject] if isinstance(subject, Mapping) else []


class LinkIndex:
    """Queries over the vault's link table; each call opens a short connection (calls are rare)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def _rows(self, sql: str, params: Sequence[Any]) -> list[LinkRow]:
        with psycopg.connect(self._dsn, connect_timeout=10) as conn:
            if conn.execute("SELECT to_regclass('vault_links')").fetchone() == (None,):
                return []  # the linker has not run against this database yet
            rows = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]  # static SQL
        return [LinkRow(e, int(i), p, tuple(t)) for e, i, p, t in rows]

    def by_tokens(self, tokens: Sequence[str]) -> list[LinkRow]:
        """Records carrying any of `tokens`, and every record of the people they belong to."""
        if not tokens:
            return []
        return self._rows(
            "WITH persons AS (SELECT DISTINCT person_token FROM vault_links WHERE tokens && %s::text[]) "
            "SELECT event_id, subject_index, person_token, tokens FROM vault_links "
            "WHERE person_token IN (SELECT person_token FROM persons) OR tokens && %s::text[] "
            "ORDER BY event_id, subject_index",
            (list(tokens), list(tokens)),
        )

    def by_events(self, event_ids: Sequence[str]) -> list[LinkRow]:
        if not event_ids:
            return []
        return self._rows(
            "SELECT event_id, subject_index, person_token, tokens FROM vault_links "
            "WHERE event_id = ANY(%s) ORDER BY event_id, subject_index",
            (list(event_ids),),
        )

    def by_persons(self, person_tokens: Sequence[str]) -> list[LinkRow]:
        if not person_tokens:
            return []
        return self._rows(
            "SELECT event_id, subject_index, person_token, tokens FROM vault_links "
            "WHERE person_token = ANY(%s) ORDER BY event_id, subject_index",
            (list(person_tokens),),
        )

    def forget_events(self, partner: str, event_ids: Iterable[str]) -> int:
        """Erase one controller's events from the vault, leaving the person's other records.

        For a person other controllers also hold events about: `Vault.forget` would erase theirs
        too. Returns rows deleted.
        """
        ids = sorted(set(event_ids))
        if not ids:
            return 0
        with psycopg.connect(self._dsn, connect_timeout=10) as conn:
            deleted = delete_subjects(conn, "WHERE s.partner = %s AND s.event_id = ANY(%s)", (partner, ids))
            deleted += conn.execute("DELETE FROM vault_links WHERE event_id = ANY(%s)", (ids,)).rowcount
        return max(deleted, 0)

    def replace_identities(self, partner: str, event_id: str) -> int:
        """Drop the identifiers a rectified event had in the vault (the corrected ones are written
        afresh), so re-identification never answers with the value the controller corrected."""
        with psycopg.connect(self._dsn, connect_timeout=10) as conn:
            return delete_subjects(conn, "WHERE s.partner = %s AND s.event_id = %s", (partner, event_id))
