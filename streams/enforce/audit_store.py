"""The queryable copy of the audit ledger in PostgreSQL: who received what, when, under which agreement.

The topic is the ledger (append-only, hash-chained); this table answers subject access (DPO control
11, by recipient-domain token) and per-event questions, and tells erasure which recipients to reach.
It keeps the *first* decision per (event_id, recipient): after a crash the enforcer re-decides
events (at-least-once) and those duplicates are dropped here, while the chain keeps them. Each row
keeps the record exactly as chained (`record` jsonb), so a row can be checked against its hash and
`chain_heads()` can anchor a topic verification.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from streams.enforce.audit import DECISION_DEFAULTS, DECISION_REQUIRED, KIND_DECISION, OUTCOMES
from streams.errors import SharingBusError, ValidationError
from streams.pg import MANAGED_SCHEMA, first_line

SCHEMA = """
SELECT pg_advisory_xact_lock(hashtext('sharingbus.audit_decisions'));
CREATE TABLE IF NOT EXISTS audit_decisions (
    event_id            text        NOT NULL,
    recipient           text        NOT NULL,
    source_partner      text        NOT NULL,
    event_type          text        NOT NULL,
    agreement_id        text,
    agreement_version   text,
    plan_version        text,
    outcome             text        NOT NULL CHECK (outcome IN ('shared', 'denied', 'error')),
    reason              text        NOT NULL,
    released            text[]      NOT NULL DEFAULT '{}',
    withheld            text[]      NOT NULL DEFAULT '{}',
    transformed         text[]      NOT NULL DEFAULT '{}',
    invalid_identifiers text[]      NOT NULL DEFAULT '{}',
    subject_tokens      text[]      NOT NULL DEFAULT '{}',
    output_topic        text,
    at                  timestamptz NOT NULL,
    chain               text        NOT NULL,
    seq                 bigint      NOT NULL,
    prev_hash           text        NOT NULL,
    hash                text        NOT NULL,
    record              jsonb       NOT NULL,
    stored_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, recipient)
);
CREATE INDEX IF NOT EXISTS audit_decisions_subject_tokens ON audit_decisions USING GIN (subject_tokens);
CREATE INDEX IF NOT EXISTS audit_decisions_chain_seq ON audit_decisions (chain, seq);
"""

# One statement per batch: the batch travels as one jsonb array and PostgreSQL unpacks it, so a
# batch costs one round trip; WITH ORDINALITY keeps the batch order so the first duplicate wins.
_INSERT = """
INSERT INTO audit_decisions (
    event_id, recipient, source_partner, event_type, agreement_id, agreement_version, plan_version,
    outcome, reason, released, withheld, transformed, invalid_identifiers, subject_tokens,
    output_topic, at, chain, seq, prev_hash, hash, record)
SELECT p.event_id, p.recipient, p.source_partner, p.event_type, p.agreement_id, p.agreement_version,
       p.plan_version, p.outcome, p.reason, COALESCE(p.released, '{}'), COALESCE(p.withheld, '{}'),
       COALESCE(p.transformed, '{}'), COALESCE(p.invalid_identifiers, '{}'), COALESCE(p.subject_tokens, '{}'),
       p.output_topic, p.at, p.chain, p.seq, p.prev_hash,
       p.hash, e.r
FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(r, n),
     LATERAL jsonb_populate_record(NULL::audit_decisions, e.r) AS p
ORDER BY e.n
ON CONFLICT (event_id, recipient) DO NOTHING
"""

_CHAIN_FIELDS = ("chain", "seq", "prev_hash", "hash", "at")


class AuditStoreError(SharingBusError):
    """PostgreSQL refused a statement, e.g. data it cannot hold (messages never show the password)."""


class AuditStoreUnavailable(AuditStoreError):
    """PostgreSQL cannot be reached or is failing: transient, retry later."""


def _where(dsn: str) -> str:
    """host:port/dbname of a DSN, for error messages without credentials."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid dsn>"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def check_decision(record: Mapping[str, Any]) -> None:
    """ValidationError unless `record` is a chained decision record the table can hold."""
    if record.get("kind", KIND_DECISION) != KIND_DECISION:
        raise ValidationError("kind", f"not a decision record: {record.get('kind')!r}")
    missing = (DECISION_REQUIRED | set(_CHAIN_FIELDS)).difference(record)
    if missing:
        raise ValidationError("audit", f"record misses {sorted(missing)}")
    if record["outcome"] not in OUTCOMES:
        raise ValidationError("outcome", f"must be one of {sorted(OUTCOMES)}, got {record['outcome']!r}")
    for name in DECISION_REQUIRED | {"chain", "prev_hash", "hash", "at"}:
        if not isinstance(record[name], str):
            raise ValidationError(name, "must be a string")
    if not isinstance(record["seq"], int):
        raise ValidationError("seq", "must be an integer")
    for name, default in DECISION_DEFAULTS.items():
        value = record.get(name, default)
        if isinstance(default, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(name, "must be a list of strings")
        elif value is not None and not isinstance(value, str):
            raise ValidationError(name, "must be a string or null")


class AuditStore:
    """Decision records in table `audit_decisions`; one connection, used from one thread at a time.

    Methods are blocking: call them from a thread executor inside an event loop.
    """

    def __init__(self, dsn: str, connect_timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=int(self.connect_timeout),
                    row_factory=tuple_row,
                )
            except psycopg.Error as exc:
                raise AuditStoreUnavailable(
                    f"cannot connect to PostgreSQL at {_where(self.dsn)}: {first_line(exc)}"
                ) from exc
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; a broken connection is dropped so the next call reconnects."""
        with self._lock:
            conn = self._connection()
            try:
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description else [(cur.rowcount,)]
            except psycopg.OperationalError as exc:
                self.close()
                raise AuditStoreUnavailable(
                    f"PostgreSQL at {_where(self.dsn)} failed: {first_line(exc)}"
                ) from exc
            except psycopg.errors.UndefinedTable as exc:
                raise AuditStoreError(
                    f"no audit table in {_where(self.dsn)}: the audit sink has not run there yet"
                ) from exc
            except psycopg.Error as exc:
                raise AuditStoreError(f"PostgreSQL refused a statement: {first_line(exc)}") from exc

    def ensure_schema(self) -> None:
        """Create the table and indexes if missing (idempotent), unless `sharebus db init` owns them."""
        if not self._execute("SELECT to_regnamespace(%s) IS NOT NULL", (MANAGED_SCHEMA,))[0][0]:
            self._execute(SCHEMA)

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Insert decision records in one round trip; returns how many were new.

        The first decision per (event_id, recipient) wins, within the batch and across batches.
        Every record is validated first (ValidationError names the bad field): a bad record fails
        the whole batch before anything is written, so callers can set it aside and retry.
        AuditStoreUnavailable: retry later; AuditStoreError: something in the batch cannot be stored.
        """
        batch = list(records)
        for record in batch:
            check_decision(record)
        if not batch:
            return 0
        rows = self._execute(_INSERT, (Jsonb(batch),))
        return int(rows[0][0])

    def _records(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return [_as_dict(row[0]) for row in self._execute(sql, params)]

    def by_event(self, event_id: str) -> list[dict[str, Any]]:
        """Every recipient's decision on one event (the records as chained), by recipient."""
        return self._records(
            "SELECT record FROM audit_decisions WHERE event_id = %s ORDER BY recipient", (event_id,)
        )

    def by_subject(self, token: str) -> list[dict[str, Any]]:
        """Everything released carrying this recipient-domain token: who received what, when, why."""
        return self._records(
            "SELECT record FROM audit_decisions WHERE subject_tokens @> ARRAY[%s]::text[] "
            "ORDER BY at, event_id, recipient",
            (token,),
        )

    def recipients_of(self, event_ids: Iterable[str]) -> dict[str, list[tuple[str, str | None, str | None]]]:
        """For erasure/rectification: per event, who received it (recipient, output_topic, agreement_id).

        Only `shared` decisions count: a denied recipient never received anything.
        """
        ids = list(dict.fromkeys(event_ids))
        result: dict[str, list[tuple[str, str | None, str | None]]] = {e: [] for e in ids}
        if not ids:
            return result
        rows = self._execute(
            "SELECT event_id, recipient, output_topic, agreement_id FROM audit_decisions "
            "WHERE event_id = ANY(%s) AND outcome = 'shared' ORDER BY event_id, recipient",
            (ids,),
        )
        for event_id, recipient, output_topic, agreement_id in rows:
            result[event_id].append((recipient, output_topic, agreement_id))
        return result

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        """Highest stored (seq, hash) per chain: anchors for `streams.enforce.audit.verify(anchors=...)`."""
        rows = self._execute(_heads_sql(""))
        return {chain: (int(seq), digest) for chain, seq, digest in rows}

    def heads_of(self, chains: Sequence[str]) -> dict[str, tuple[int, str]]:
        """`chain_heads` of these chains only: where the enforcer continues a chain the topic lost."""
        rows = self._execute(_heads_sql("WHERE chain = ANY(%s)"), (list(chains),))
        return {chain: (int(seq), digest) for chain, seq, digest in rows}

    def record_at(self, chain: str, seq: int) -> dict[str, Any] | None:
        """The record stored at `seq` of `chain` (as chained), if any: what an epoch record links to."""
        rows = self._execute(
            "SELECT record FROM audit_decisions WHERE chain = %s AND seq = %s LIMIT 1", (chain, seq)
        )
        return _as_dict(rows[0][0]) if rows else None


def _heads_sql(where: str) -> str:
    return (
        f"SELECT DISTINCT ON (chain) chain, seq, hash FROM audit_decisions {where} ORDER BY chain, seq DESC"
    )


def _as_dict(value: Any) -> dict[str, Any]:
    """psycopg loads jsonb to Python already; accept text too (a custom loader may be registered)."""
    if isinstance(value, str):
        loaded = json.loads(value)
        return dict(loaded)
    return dict(value)
