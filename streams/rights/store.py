"""PostgreSQL state of subject rights: the request log, each action taken, and restrictions.

- `subject_requests`: one row per request, with what it was resolved to (the owned events, their
  person tokens, the subject's linkage tokens). Stored before anything is sent, so re-running a
  request (a batch re-decided after a failed delivery, a redelivery after a crash) acts on the
  same events even after the first run erased the links it was resolved from.
- `subject_request_actions`: every retraction, correction and internal step, per (request, event,
  recipient, action); what subject access reports as "requests applied".
- `subject_restrictions`: (linkage token, partner) pairs under restriction, and
  `subject_rights_version`, bumped on every change, which workers poll to refresh their cache.
- `retention_purged`: events whose retention ran out and were purged (`streams.rights.retention`).
The request log keeps keyed linkage tokens, never identifiers (corrections aside, which are the
new values the controller supplied), for the audit period: it is the evidence a request was met.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from streams.pg import managed

__all__ = ["SCHEMA", "Resolution", "RightsStore"]

SCHEMA = """
SELECT pg_advisory_xact_lock(hashtext('sharingbus.subject_rights'));
CREATE TABLE IF NOT EXISTS subject_requests (
    request_id text PRIMARY KEY,
    seq bigserial,
    partner text NOT NULL,
    kind text NOT NULL,
    requester text NOT NULL,
    reason text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    event_ids text[] NOT NULL DEFAULT '{}',
    tokens text[] NOT NULL DEFAULT '{}',
    refused jsonb NOT NULL DEFAULT '[]',
    links jsonb NOT NULL DEFAULT '[]',
    others int NOT NULL DEFAULT 0,
    corrections jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS subject_requests_events ON subject_requests USING GIN (event_ids);
CREATE INDEX IF NOT EXISTS subject_requests_tokens ON subject_requests USING GIN (tokens);
CREATE TABLE IF NOT EXISTS subject_request_actions (
    request_id text NOT NULL,
    event_id text NOT NULL,
    recipient text NOT NULL,
    action text NOT NULL,
    outcome text NOT NULL,
    reason text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, event_id, recipient, action)
);
CREATE INDEX IF NOT EXISTS subject_request_actions_event ON subject_request_actions (event_id);
CREATE TABLE IF NOT EXISTS subject_restrictions (
    token text NOT NULL,
    partner text NOT NULL,
    request_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token, partner)
);
CREATE TABLE IF NOT EXISTS subject_rights_version (
    id int PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO subject_rights_version VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS retention_purged (
    event_id text PRIMARY KEY,
    source_partner text NOT NULL,
    purged_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON subject_requests, subject_request_actions, subject_restrictions, subject_rights_version,
    retention_purged FROM PUBLIC;
"""

_COLUMNS = (
    "request_id, seq, partner, kind, requester, reason, "
    "event_ids, tokens, refused, links, others, corrections"
)


@dataclass
class Resolution:
    """What a request applies to, fixed the first time it runs."""

    request_id: str
    partner: str
    kind: str
    requester: str
    reason: str
    event_ids: list[str] = field(default_factory=list)  # events the partner owns
    tokens: list[str] = field(default_factory=list)  # the subject's exact linkage tokens
    refused: list[tuple[str, str]] = field(default_factory=list)  # (named event id, why)
    links: list[tuple[str, int, str | None]] = field(default_factory=list)  # (event, subject, person)
    others: int = 0  # events about the subject held by other controllers (never touched)
    corrections: Mapping[str, Any] = field(default_factory=dict)
    seq: int | None = None

    def person_tokens(self) -> list[str]:
        return sorted({p for _, _, p in self.links if p})


def _resolution(row: Sequence[Any]) -> Resolution:
    rid, seq, partner, kind, requester, reason, events, tokens, refused, links, others, corr = row
    return Resolution(
        request_id=rid,
        partner=partner,
        kind=kind,
        requester=requester,
        reason=reason,
        event_ids=list(events),
        tokens=list(tokens),
        refused=[(str(e), str(r)) for e, r in refused],
        links=[(str(e), int(i), p) for e, i, p in links],
        others=int(others),
        corrections=dict(corr),
        seq=int(seq),
    )


class RightsStore:
    """The tables above over one autocommit connection (reconnects when it breaks); blocking."""

    def __init__(self, dsn: str, *, ensure: bool = True) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()
        if ensure:
            self.ensure_schema()

    def _execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(
                    self._dsn, autocommit=True, connect_timeout=10, row_factory=tuple_row
                )
            try:
                cur = self._conn.execute(sql, params)  # type: ignore[arg-type]  # SQL is static text
            except psycopg.OperationalError:
                self._conn.close()
                raise
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def ensure_schema(self) -> None:
        with psycopg.connect(self._dsn, connect_timeout=10) as conn:
            if not managed(conn):  # else `sharebus db init` made them (this role may not)
                conn.execute(SCHEMA)  # type: ignore[arg-type]  # static DDL

    # --- requests ---------------------------------------------------------------------------------

    def load(self, request_id: str) -> Resolution | None:
        rows = self._execute(f"SELECT {_COLUMNS} FROM subject_requests WHERE request_id = %s", (request_id,))
        return _resolution(rows[0]) if rows else None

    def save(self, res: Resolution) -> Resolution:
        """Store a first resolution; if the request was stored already, that one wins (and returns)."""
        self._execute(
            "INSERT INTO subject_requests (request_id, partner, kind, requester, reason, event_ids, tokens, "
            "refused, links, others, corrections) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (request_id) DO NOTHING",
            (
                res.request_id,
                res.partner,
                res.kind,
                res.requester,
                res.reason,
                res.event_ids,
                res.tokens,
                Jsonb([list(r) for r in res.refused]),
                Jsonb([list(link) for link in res.links]),
                res.others,
                Jsonb(dict(res.corrections)),
            ),
        )
        stored = self.load(res.request_id)
        assert stored is not None
        return stored

    def earlier_corrections(self, event_id: str, seq: int) -> list[dict[str, Any]]:
        """Corrections of earlier rectifications of `event_id`, oldest first."""
        rows = self._execute(
            "SELECT corrections FROM subject_requests WHERE kind = 'rectify' AND seq < %s "
            "AND event_ids @> ARRAY[%s]::text[] ORDER BY seq",
            (seq, event_id),
        )
        return [dict(r[0]) for r in rows]

    def erased(self, event_ids: Iterable[str], seq: int) -> set[str]:
        """Which of `event_ids` an earlier erasure already covered (they cannot be rectified)."""
        rows = self._execute(
            "SELECT DISTINCT unnest(event_ids) FROM subject_requests WHERE kind = 'erase' AND seq < %s "
            "AND event_ids && %s::text[]",
            (seq, list(event_ids)),
        )
        return {r[0] for r in rows} & set(event_ids)

    def record_actions(self, rows: Iterable[tuple[str, str, str, str, str, str]]) -> None:
        """(request_id, event_id, recipient, action, outcome, reason); a re-run updates in place."""
        batch = list(rows)
        if not batch:
            return
        self._execute(
            "INSERT INTO subject_request_actions (request_id, event_id, recipient, action, outcome, reason) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (request_id, event_id, recipient, action) DO UPDATE "
            "SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason",
            [list(col) for col in zip(*batch, strict=True)],
        )

    def requests_about(self, event_ids: Sequence[str], tokens: Sequence[str]) -> list[dict[str, Any]]:
        """Requests touching these events or these linkage tokens, with their actions (subject access)."""
        rows = self._execute(
            "SELECT r.request_id, r.partner, r.kind, r.requester, r.reason, r.received_at, r.event_ids, "
            "COALESCE(jsonb_agg(jsonb_build_object('event_id', a.event_id, 'recipient', a.recipient, "
            "'action', a.action, 'outcome', a.outcome, 'reason', a.reason, 'at', a.at) "
            "ORDER BY a.at, a.event_id, a.recipient) FILTER (WHERE a.request_id IS NOT NULL), '[]') "
            "FROM subject_requests r LEFT JOIN subject_request_actions a ON a.request_id = r.request_id "
            "WHERE r.event_ids && %s::text[] OR r.tokens && %s::text[] "
            "GROUP BY r.request_id ORDER BY min(r.seq)",
            (list(event_ids), list(tokens)),
        )
        names = (
            "request_id",
            "partner",
            "kind",
            "requester",
            "reason",
            "received_at",
            "event_ids",
            "actions",
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    # --- restrictions -----------------------------------------------------------------------------

    def restrict(self, partner: str, tokens: Iterable[str], request_id: str) -> int:
        """Put tokens under restriction for `partner`'s events; returns how many were new."""
        tokens = sorted(set(tokens))
        rows = self._execute(
            "WITH ins AS (INSERT INTO subject_restrictions (token, partner, request_id) "
            "SELECT t, %s, %s FROM unnest(%s::text[]) AS t ON CONFLICT DO NOTHING RETURNING 1), "
            "bump AS (UPDATE subject_rights_version SET version = version + 1 WHERE id = 1) "
            "SELECT count(*) FROM ins",
            (partner, request_id, tokens),
        )
        return int(rows[0][0])

    def unrestrict(self, partner: str, tokens: Iterable[str]) -> int:
        """Lift restrictions on tokens for `partner`; returns how many were lifted."""
        rows = self._execute(
            "WITH del AS (DELETE FROM subject_restrictions WHERE partner = %s AND token = ANY(%s) "
            "RETURNING 1), bump AS (UPDATE subject_rights_version SET version = version + 1 WHERE id = 1) "
            "SELECT count(*) FROM del",
            (partner, sorted(set(tokens))),
        )
        return int(rows[0][0])

    def restrictions_version(self) -> int:
        return int(self._execute("SELECT version FROM subject_rights_version WHERE id = 1")[0][0])

    def restrictions(self) -> tuple[int, dict[str, dict[str, str]]]:
        """(version, partner -> token -> request id), read in one snapshot."""
        rows = self._execute(
            "SELECT v.version, r.partner, r.token, r.request_id FROM subject_rights_version v "
            "LEFT JOIN subject_restrictions r ON true WHERE v.id = 1"
        )
        result: dict[str, dict[str, str]] = {}
        version = 0
        for v, partner, token, request_id in rows:
            version = int(v)
            if partner is not None:
                result.setdefault(partner, {})[token] = request_id
        return version, result
