"""Who asked for a subject access report, about which controller, when, and what they were told.

Next to the re-identification audit in the vault's schema (`sharingbus_vault`, see streams.pg_roles):
a subject access report describes everything a controller shared about one person, so every
answer and every refusal leaves a row. The row names the identifier kinds searched by, never their
values: the audit must not become a second copy of the person's identifiers. The rights role may
insert and read rows, never update or delete them.

Table `subject_access_audit(id, at, requester, partner, searched_by, outcome, reason, sharings)`:
`requester` is the verified identity (`(unverified)` when no token was verified), `partner` the
controller asked about (as given, when refused before one was settled), `outcome` `answered` or
`refused`, `sharings` how many sharings the report listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from streams.pg import managed
from streams.rights.reidentify import UNVERIFIED

__all__ = ["SCHEMA", "UNVERIFIED", "AccessAudit", "AccessOutcome"]

AccessOutcome = Literal["answered", "refused"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_access_audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    requester text NOT NULL,
    partner text,
    searched_by text[] NOT NULL DEFAULT '{}',
    outcome text NOT NULL CHECK (outcome IN ('answered', 'refused')),
    reason text NOT NULL,
    sharings int NOT NULL DEFAULT 0
);
REVOKE ALL ON subject_access_audit FROM PUBLIC;
"""


class AccessAudit:
    """Rows of `subject_access_audit`, over the rights role's connection."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._dsn, connect_timeout=10)
        if not managed(conn):  # `sharebus db init` made the table; without it, make it here
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sharingbus.subject_access_audit'))")
            conn.execute(SCHEMA)  # type: ignore[arg-type]
        return conn

    def record(
        self,
        outcome: AccessOutcome,
        *,
        requester: str | None,
        partner: str | None,
        searched_by: Iterable[str],
        reason: str,
        sharings: int = 0,
    ) -> None:
        """One row, committed before the caller sees the report (or the refusal)."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO subject_access_audit (requester, partner, searched_by, outcome, reason,"
                " sharings) VALUES (%s, %s, %s, %s, %s, %s)",
                (requester or UNVERIFIED, partner, sorted(set(searched_by)), outcome, reason, sharings),
            )

    def log(self) -> list[dict[str, Any]]:
        """Every row, oldest first."""
        with self._connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT id, at, requester, partner, searched_by, outcome, reason, sharings"
                " FROM subject_access_audit ORDER BY id"
            )
            return cur.fetchall()
