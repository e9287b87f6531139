"""The vault's one read path: re-identification requests, their audit, and the answering function.

Identifiers leave the vault only through `reidentification_answer(request, requester)`, a
SECURITY DEFINER function owned by the vault's owner: it answers a request a second, different
data owner approved (or one opened as break-glass), once, to the identity that asked, and writes
the audit row in the same transaction. The rights role may call it but cannot SELECT identifiers
(streams.pg_roles), nor update or delete audit rows: whatever the service in front of it does, no
identifier leaves without a row naming a requester and a second identity as approver, or saying
`break_glass`. (Verifying tokens and the roles file is the rights service's job; the database
keeps the record it cannot take back.)

Tables (created by `SCHEMA`, applied after the vault's own):
- `reidentification_requests(id, at, token, partner, requester, justification, state, approver,
  decided_at, answered_at, break_glass)`: one per request; `state` is pending -> approved ->
  answered, pending -> declined, or break_glass -> answered. The approver is never the requester.
- `reidentification_audit(id, at, requester, approver, partner, token, justification, outcome,
  reason, returned, request_id)`: every step, with both identities where there are two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

__all__ = ["OUTCOMES", "SCHEMA", "Identity", "Outcome", "RequestRow", "VaultAccess", "audit"]

Outcome = Literal[
    "requested",
    "approved",
    "declined",
    "refused",
    "granted",
    "not_found",
    "break_glass",
    "reviewed",
    "erased",
]
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]
_OUTCOME_CHECK = "CHECK (outcome IN (" + ", ".join(f"'{o}'" for o in OUTCOMES) + "))"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS reidentification_audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    requester text NOT NULL,
    partner text,
    token text NOT NULL,
    justification text NOT NULL,
    outcome text NOT NULL CONSTRAINT reidentification_audit_outcome_check {_OUTCOME_CHECK},
    reason text NOT NULL,
    returned int NOT NULL DEFAULT 0
);
ALTER TABLE reidentification_audit ADD COLUMN IF NOT EXISTS approver text;
ALTER TABLE reidentification_audit ADD COLUMN IF NOT EXISTS request_id bigint;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'reidentification_audit'::regclass
          AND conname = 'reidentification_audit_outcome_check'
          AND pg_get_constraintdef(oid) LIKE '%reviewed%'
    ) THEN
        ALTER TABLE reidentification_audit DROP CONSTRAINT IF EXISTS reidentification_audit_outcome_check;
        ALTER TABLE reidentification_audit
            ADD CONSTRAINT reidentification_audit_outcome_check {_OUTCOME_CHECK};
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS reidentification_requests (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    token text NOT NULL,
    partner text NOT NULL,
    requester text NOT NULL,
    justification text NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'approved', 'declined', 'break_glass', 'answered')),
    approver text,
    decided_at timestamptz,
    answered_at timestamptz,
    break_glass boolean NOT NULL DEFAULT false,
    CHECK (approver IS NULL OR approver <> requester),
    CHECK (state <> 'approved' OR approver IS NOT NULL)
);
CREATE OR REPLACE FUNCTION reidentification_answer(p_request bigint, p_requester text)
RETURNS TABLE (kind text, value text, event_id text, token text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
#variable_conflict use_column
DECLARE
    r reidentification_requests%ROWTYPE;
    n int;
    result text;
BEGIN
    SELECT * INTO r FROM reidentification_requests q WHERE q.id = p_request FOR UPDATE;
    IF NOT FOUND OR r.requester <> p_requester THEN
        RAISE EXCEPTION 'no re-identification request % of this requester', p_request
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF r.state = 'approved' AND r.approver IS NOT NULL AND r.approver <> r.requester THEN
        result := 'granted';
    ELSIF r.state = 'break_glass' AND r.break_glass THEN
        result := 'break_glass';
    ELSE
        RAISE EXCEPTION 're-identification request % is %, not approved', p_request, r.state
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF r.token LIKE 'p.%' THEN
        RETURN QUERY
        WITH root AS (
            SELECT COALESCE(
                (SELECT a.into_token FROM vault_aliases a WHERE a.from_token = r.token), r.token
            ) AS p
        ), persons AS (
            SELECT p FROM root
            UNION SELECT a.from_token FROM vault_aliases a, root WHERE a.into_token = root.p
        )
        SELECT DISTINCT i.kind, i.value, i.event_id, i.token
        FROM vault_links l JOIN vault_identities i ON i.event_id = l.event_id AND i.token = ANY (l.tokens)
        WHERE l.person_token IN (SELECT p FROM persons) AND i.partner = r.partner
        ORDER BY i.event_id, i.kind, i.value;
    ELSE
        RETURN QUERY
        SELECT DISTINCT i.kind, i.value, i.event_id, i.token FROM vault_identities i
        WHERE i.token = r.token AND i.partner = r.partner ORDER BY i.event_id, i.kind, i.value;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF result = 'granted' AND n = 0 THEN
        result := 'not_found';
    END IF;
    UPDATE reidentification_requests q SET state = 'answered', answered_at = now() WHERE q.id = r.id;
    INSERT INTO reidentification_audit
        (requester, approver, partner, token, justification, outcome, reason, returned, request_id)
    VALUES (r.requester, r.approver, r.partner, r.token, r.justification, result,
            CASE WHEN r.break_glass THEN 'break-glass: answered before a second approval'
                 ELSE 'answered after approval by a second data owner' END,
            n, r.id);
END
$fn$;
REVOKE ALL ON reidentification_audit, reidentification_requests FROM PUBLIC;
REVOKE ALL ON FUNCTION reidentification_answer(bigint, text) FROM PUBLIC;
"""


@dataclass(frozen=True, slots=True)
class Identity:
    """One identifier as the owning partner sent it, and the event it came with."""

    kind: str
    value: str
    event_id: str
    token: str


@dataclass(frozen=True)
class RequestRow:
    id: int
    token: str
    partner: str
    requester: str
    justification: str
    state: str
    approver: str | None
    break_glass: bool


def audit(
    conn: psycopg.Connection[Any],
    outcome: Outcome,
    *,
    requester: str,
    partner: str | None,
    token: str,
    justification: str,
    reason: str,
    approver: str | None = None,
    returned: int = 0,
    request_id: int | None = None,
) -> None:
    """One audit row; every step of a request (and every erasure) writes one."""
    conn.execute(
        "INSERT INTO reidentification_audit (requester, approver, partner, token, justification,"
        " outcome, reason, returned, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (requester, approver, partner, token, justification, outcome, reason, returned, request_id),
    )


class VaultAccess:
    """The request table and the answering function, over the rights role's connection."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._dsn, connect_timeout=10)

    @staticmethod
    def open_request(
        conn: psycopg.Connection[Any],
        token: str,
        partner: str,
        requester: str,
        justification: str,
        *,
        break_glass: bool = False,
    ) -> int:
        state = "break_glass" if break_glass else "pending"
        row = conn.execute(
            "INSERT INTO reidentification_requests (token, partner, requester, justification, state,"
            " break_glass) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (token, partner, requester, justification, state, break_glass),
        ).fetchone()
        assert row is not None
        return int(row[0])

    @staticmethod
    def request(conn: psycopg.Connection[Any], request_id: int) -> RequestRow | None:
        """The request, locked until the transaction ends (one decision at a time)."""
        row = conn.execute(
            "SELECT id, token, partner, requester, justification, state, approver, break_glass"
            " FROM reidentification_requests WHERE id = %s FOR UPDATE",
            (request_id,),
        ).fetchone()
        return RequestRow(*row) if row else None

    @staticmethod
    def decide(conn: psycopg.Connection[Any], request_id: int, state: str, approver: str) -> None:
        conn.execute(
            "UPDATE reidentification_requests SET state = %s, approver = %s, decided_at = now()"
            " WHERE id = %s",
            (state, approver, request_id),
        )

    @staticmethod
    def answer(conn: psycopg.Connection[Any], request_id: int, requester: str) -> list[Identity]:
        """The identifiers, through the vault's function (which checks the approval and audits)."""
        rows = conn.execute(
            "SELECT kind, value, event_id, token FROM reidentification_answer(%s, %s)",
            (request_id, requester),
        ).fetchall()
        return [Identity(*row) for row in rows]

    def pending(self, partners: Sequence[str]) -> list[dict[str, Any]]:
        """Requests awaiting a second owner (and break-glass answers awaiting review), oldest first."""
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT id, at, token, partner, requester, justification, state, break_glass"
                " FROM reidentification_requests WHERE partner = ANY (%s)"
                " AND (state = 'pending' OR (break_glass AND approver IS NULL)) ORDER BY id",
                (list(partners),),
            )
            return cur.fetchall()

    def audit_log(self, token: str | None = None) -> list[dict[str, Any]]:
        """Audit rows (all, or for one token), oldest first."""
        query = (
            "SELECT id, at, requester, approver, partner, token, justification, outcome, reason,"
            " returned, request_id FROM reidentification_audit"
        )
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            if token:
                cur.execute(query + " WHERE token = %s ORDER BY id", (token,))
            else:
                cur.execute(query + " ORDER BY id")
            return cur.fetchall()
