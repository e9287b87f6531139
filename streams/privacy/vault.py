"""The re-identification vault: token -> a partner's OWN identifiers, for that partner's data owners only.

Nothing downstream of the enforcer can turn a token back into a person. When a partner needs to act
on what the bus showed them (a person token on a profile), one of its data owners asks, with a
justification, and a second approves (`streams.rights.reidentify`); the vault answers with the
identifiers *that partner* sent (never another agency's) and every step is audited (DPA 2018
s.62: who, what, when, why).

Tables (PostgreSQL; created by `ensure_schema`, PUBLIC access revoked: grant them to the vault's own
role only):
- `vault_subjects(token, event_id, partner, identifiers, recorded_at, digest, identifier_count)`:
  written by the enforcer (`record_prepared`), one row per subject an event carried, with the
  identifiers exactly as the partner sent them (a JSON object, kind -> value); `token` is a linkage
  token of that subject. `identifier_count` (generated) lets erasure and retention count what
  they deleted without reading an identifier. `vault_identities(token, partner, kind, value,
  event_id, recorded_at)` is a view of it, one row per identifier; the table keeps one row per
  subject because that is a sixth of the rows and index entries to write, at ~70k identifiers a
  second under a 10k events/s enforcer.
- `vault_links(event_id, subject_index, person_token, tokens)`: written by the linker, one row per
  linked record (`link_many`); merges move rows to the surviving person token (`merge_many`) and
  are remembered in `vault_aliases` so a stale person token still resolves.
- the re-identification requests and their audit (`streams.privacy.vault_access`): identifiers
  leave the vault only through its SECURITY DEFINER function, for a request a second data owner
  approved (`streams.rights.reidentify`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson
import psycopg

from streams.pg import managed
from streams.privacy.identifiers import SUBJECT_FIELDS
from streams.privacy.vault_access import SCHEMA as ACCESS_SCHEMA
from streams.privacy.vault_access import audit

__all__ = ["ACCESS_SCHEMA", "IDENTIFIER_FIELDS", "SCHEMA", "Vault", "copy_prefix", "delete_subjects"]

IDENTIFIER_FIELDS = SUBJECT_FIELDS

SCHEMA = """
CREATE TABLE IF NOT EXISTS vault_subjects (
    token text NOT NULL,
    event_id text NOT NULL,
    partner text NOT NULL,
    identifiers jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    digest text GENERATED ALWAYS AS (md5(identifiers::text)) STORED,
    PRIMARY KEY (token, event_id, partner, digest)
);
CREATE INDEX IF NOT EXISTS vault_subjects_event ON vault_subjects (event_id);
-- Before vault_subjects, vault_identities was a table of one row per identifier: move its rows.
-- (Two spellings of one kind under one token in one event keep one of them.)
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = 'vault_identities' AND c.relkind = 'r' AND n.nspname = current_schema()
    ) THEN
        INSERT INTO vault_subjects (token, event_id, partner, identifiers, recorded_at)
        SELECT token, event_id, partner, jsonb_object_agg(kind, value), min(recorded_at)
        FROM vault_identities GROUP BY token, event_id, partner
        ON CONFLICT DO NOTHING;
        DROP TABLE vault_identities;
    END IF;
END
$$;
CREATE OR REPLACE VIEW vault_identities AS
    SELECT s.token, s.partner, i.key AS kind, i.value, s.event_id, s.recorded_at
    FROM vault_subjects s CROSS JOIN LATERAL jsonb_each_text(s.identifiers) AS i(key, value);
CREATE TABLE IF NOT EXISTS vault_links (
    event_id text NOT NULL,
    subject_index int NOT NULL,
    person_token text NOT NULL,
    tokens text[] NOT NULL,
    PRIMARY KEY (event_id, subject_index)
);
CREATE INDEX IF NOT EXISTS vault_links_person ON vault_links (person_token);
CREATE TABLE IF NOT EXISTS vault_aliases (
    from_token text PRIMARY KEY,
    into_token text NOT NULL
);
-- Checked first: ALTER TABLE locks out the enforcers' writes even when the column is there.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'vault_subjects'::regclass AND attname = 'identifier_count' AND NOT attisdropped
    ) THEN
        ALTER TABLE vault_subjects ADD COLUMN identifier_count int GENERATED ALWAYS AS
            (jsonb_array_length(jsonb_path_query_array(identifiers, '$.keyvalue()'))) STORED;
    END IF;
END
$$;
REVOKE ALL ON vault_subjects, vault_identities, vault_links, vault_aliases FROM PUBLIC;
"""


# COPY text format: backslash, tab, newline and carriage return are escaped; NUL cannot be stored.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r\x00]")


def _copy_text(text: str) -> str:
    # Most values need no escaping; the search is cheaper than a translate that changes nothing.
    return text.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def copy_prefix(partner: str, token: str, identifiers: Mapping[str, Any]) -> str:
    """A subject's COPY text line for `vault_subjects`, up to (not including) the event id.

    "" when it carries no identifier (blank values are not identifiers). A pure function of its
    arguments, so the enforcer caches it per person.
    """
    kept = {}
    for kind, value in identifiers.items():
        if value is None:
            continue
        text = _text(value)
        if text.strip():
            kept[kind] = text
    if not kept:
        return ""
    return f"{_copy_text(token)}\t{_copy_text(partner)}\t{_copy_text(orjson.dumps(kept).decode())}\t"


def delete_subjects(conn: psycopg.Connection[Any], condition: str, params: Sequence[Any]) -> int:
    """`DELETE FROM vault_subjects s <condition>` (a WHERE, maybe after a USING); returns how many
    identifiers the deleted rows held, the unit erasure and retention reports count in."""
    row = conn.execute(
        f"WITH gone AS (DELETE FROM vault_subjects s {condition} RETURNING s.identifier_count) "  # type: ignore[arg-type]
        "SELECT coalesce(sum(identifier_count), 0)::int FROM gone",
        params,
    ).fetchone()
    return int(row[0]) if row else 0


def _text(value: Any) -> str:
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    return text.replace("\x00", "")  # PostgreSQL text cannot hold NUL (a permanent DataError)


class Vault:
    """PostgreSQL-backed vault; each call opens its own short connection (callers are few and bursty)."""

    def __init__(self, dsn: str, *, ensure: bool = True) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection[Any] | None = None
        if ensure:
            self.ensure_schema()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._dsn, connect_timeout=10)

    def ensure_schema(self) -> None:
        with self._connect() as conn:
            if managed(conn):  # `sharebus db init` made the tables; this role may not
                return
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sharingbus.vault'))")
            conn.execute(SCHEMA)  # type: ignore[arg-type]
            conn.execute(ACCESS_SCHEMA)  # type: ignore[arg-type]

    # --- writers ----------------------------------------------------------------------------------

    def record(self, partner: str, token: str, identifiers: Mapping[str, Any], event_id: str) -> int:
        """Store one subject's identifiers as `partner` sent them; returns rows new to the vault."""
        return self.record_many([(partner, token, identifiers, event_id)])

    def record_many(self, rows: Iterable[tuple[str, str, Mapping[str, Any], str]]) -> int:
        """Batch form of `record`; idempotent under redelivery."""
        return self.record_prepared(
            (copy_prefix(partner, token, identifiers), event_id)
            for partner, token, identifiers, event_id in rows
        )

    def record_prepared(self, rows: Iterable[tuple[str, str]]) -> int:
        """`record_many` for subjects rendered ahead: (`copy_prefix`, event id) pairs.

        What the enforcer calls once per batch: the same people recur, so it renders a person
        once and caches it. One kept-open connection and a COPY into a temporary table, then one
        INSERT ... ON CONFLICT: a connection per batch and a round trip per row cost ~50 us per
        event on the enforcer's hot path (measured in benchmarks/throughput.py). Returns how
        many identifiers were new to the vault.
        """
        lines = [f"{prefix}{_copy_text(event_id)}\n" for prefix, event_id in rows if prefix]
        if not lines:
            return 0
        conn = self._writer()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS vault_incoming_subjects "
                    "(token text, partner text, identifiers jsonb, event_id text) ON COMMIT DELETE ROWS"
                )
                # COPY's text format written in one piece: psycopg's per-row `write_row` (a dumper
                # per value) was most of the vault's cost on the enforcer's hot path.
                with cur.copy(
                    "COPY vault_incoming_subjects (token, partner, identifiers, event_id) FROM STDIN"
                ) as copy:
                    copy.write("".join(lines))
                # The count comes from the incoming rows, not RETURNING identifiers: the enforcer's
                # role may write identifiers but never read them back (streams.pg_roles).
                cur.execute(
                    "WITH new AS ("
                    " INSERT INTO vault_subjects (token, partner, identifiers, event_id)"
                    " SELECT token, partner, identifiers, event_id FROM vault_incoming_subjects"
                    " ON CONFLICT DO NOTHING RETURNING token, event_id, partner, digest)"
                    " SELECT coalesce(sum((SELECT count(*) FROM jsonb_object_keys(i.identifiers))), 0)::int"
                    " FROM new CROSS JOIN LATERAL (SELECT identifiers FROM vault_incoming_subjects v"
                    "  WHERE (v.token, v.event_id, v.partner, md5(v.identifiers::text))"
                    "      = (new.token, new.event_id, new.partner, new.digest) LIMIT 1) i"
                )
                row = cur.fetchone()
                return int(row[0]) if row else 0
        except psycopg.Error:
            self.close()  # a broken connection is reopened by the next call
            raise

    def _writer(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, connect_timeout=10, autocommit=True)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def link_many(self, rows: Iterable[tuple[str, int, str, Sequence[str]]]) -> None:
        """(event_id, subject_index, person_token, linkage tokens) per linked record (the linker)."""
        values = [(e, i, p, list(t)) for e, i, p, t in rows]
        if not values:
            return
        with self._connect() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO vault_links (event_id, subject_index, person_token, tokens) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (event_id, subject_index) "
                "DO UPDATE SET person_token = EXCLUDED.person_token, tokens = EXCLUDED.tokens",
                values,
            )

    def merge_many(self, merges: Iterable[tuple[str, str]]) -> None:
        """(from, into) person tokens, in the order the linker emitted them."""
        merges = list(merges)
        if not merges:
            return
        with self._connect() as conn, conn.cursor() as cur:
            for old, new in merges:
                cur.execute("UPDATE vault_aliases SET into_token = %s WHERE into_token = %s", (new, old))
                cur.execute(
                    "INSERT INTO vault_aliases (from_token, into_token) VALUES (%s, %s) "
                    "ON CONFLICT (from_token) DO UPDATE SET into_token = EXCLUDED.into_token",
                    (old, new),
                )
                cur.execute("UPDATE vault_links SET person_token = %s WHERE person_token = %s", (new, old))

    # --- erasure ----------------------------------------------------------------------------------

    def forget(self, token: str, requester: str = "system:erasure", justification: str = "erasure") -> int:
        """Erase everything the vault holds about a person (or one linkage token); returns rows deleted.

        The erasure itself is audited (outcome `erased`), without any identifier.
        """
        with self._connect() as conn:
            persons = [token]
            if token.startswith("p."):
                root = conn.execute(
                    "SELECT into_token FROM vault_aliases WHERE from_token = %s", (token,)
                ).fetchone()
                root_token = root[0] if root else token
                persons = [root_token] + [
                    r[0]
                    for r in conn.execute(
                        "SELECT from_token FROM vault_aliases WHERE into_token = %s", (root_token,)
                    ).fetchall()
                ]
                links = conn.execute(
                    "DELETE FROM vault_links WHERE person_token = ANY (%s) RETURNING event_id, tokens",
                    (persons,),
                ).fetchall()
                deleted = len(links)
                for event_id, tokens in links:
                    deleted += delete_subjects(
                        conn, "WHERE s.event_id = %s AND s.token = ANY (%s)", (event_id, tokens)
                    )
                deleted += conn.execute(
                    "DELETE FROM vault_aliases WHERE from_token = ANY (%s) OR into_token = ANY (%s)",
                    (persons, persons),
                ).rowcount
            else:
                deleted = delete_subjects(conn, "WHERE s.token = %s", (token,))
            audit(
                conn,
                "erased",
                requester=requester,
                partner=None,
                token=token,
                justification=justification,
                reason="erasure",
                returned=deleted,
            )
        return deleted
