"""The vault's layout on real PostgreSQL: one row per subject, and a vault from before it migrates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streams.privacy.vault import Vault
from tests.support.reid import Identities, owners_of
from tests.support.stack import create_database, drop_database, query


@pytest.fixture
def fresh_dsn() -> Iterator[str]:
    dsn = create_database("sharingbus_vault")
    yield dsn
    drop_database(dsn)


def test_one_row_per_subject_and_one_view_row_per_identifier(fresh_dsn: str) -> None:
    vault = Vault(fresh_dsn)
    tok = f"k1.{uuid.uuid4().hex}"
    subject = {"pnc_id": "19/0012345X", "family_name": "Smith", "given_name": "Jo", "postcode": ""}
    assert vault.record_many([("tvp", tok, subject, "e1"), ("tvp", tok, subject, "e2")]) == 6
    assert vault.record_many([("tvp", tok, subject, "e1")]) == 0  # a replayed batch adds nothing
    assert query(fresh_dsn, "SELECT count(*) FROM vault_subjects") == [(2,)]
    assert query(
        fresh_dsn, "SELECT kind, value FROM vault_identities WHERE event_id = 'e1' ORDER BY kind"
    ) == [("family_name", "Smith"), ("given_name", "Jo"), ("pnc_id", "19/0012345X")]
    assert vault.forget(tok) == 6
    assert query(fresh_dsn, "SELECT count(*) FROM vault_subjects") == [(0,)]


def test_a_vault_of_one_row_per_identifier_is_moved_into_the_new_layout(
    fresh_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:  # the layout before vault_subjects
        conn.execute(
            "CREATE TABLE vault_identities (token text NOT NULL, partner text NOT NULL, kind text NOT NULL,"
            " value text NOT NULL, event_id text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (token, event_id, partner, kind, value))"
        )
        conn.execute(
            "INSERT INTO vault_identities (token, partner, kind, value, event_id) VALUES"
            " ('k1.old', 'tvp', 'pnc_id', '19/0012345X', 'e1'),"
            " ('k1.old', 'tvp', 'family_name', 'Smith', 'e1'),"
            " ('k1.old', 'tvp', 'pnc_id', '19/0012345X', 'e2'),"
            " ('k1.old', 'schools', 'upn', 'A820200109001', 'e3')"
        )
    Vault(fresh_dsn)  # ensure_schema migrates
    assert query(fresh_dsn, "SELECT count(*) FROM vault_subjects") == [(3,)]
    found = Identities(tmp_path, owners_of("tvp")).reidentify(fresh_dsn, "k1.old", "tvp")
    assert sorted((i.event_id, i.kind, i.value) for i in found) == [
        ("e1", "family_name", "Smith"),
        ("e1", "pnc_id", "19/0012345X"),
        ("e2", "pnc_id", "19/0012345X"),
    ]
    Vault(fresh_dsn)  # a second start finds the view and migrates nothing twice
    assert query(fresh_dsn, "SELECT count(*) FROM vault_subjects") == [(3,)]
    assert query(fresh_dsn, "SELECT relkind::text FROM pg_class WHERE relname = 'vault_identities'") == [
        ("v",)
    ]


def test_an_audit_table_from_before_dual_control_gains_its_columns_and_outcomes(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:  # the audit table before approvals
        conn.execute(
            "CREATE TABLE reidentification_audit (id bigserial PRIMARY KEY, at timestamptz NOT NULL"
            " DEFAULT now(), requester text NOT NULL, partner text, token text NOT NULL, justification"
            " text NOT NULL, outcome text NOT NULL CHECK (outcome IN ('granted', 'not_found', 'refused',"
            " 'erased')), reason text NOT NULL, returned int NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "INSERT INTO reidentification_audit (requester, partner, token, justification, outcome, reason)"
            " VALUES ('tvp:dpo', 'tvp', 'k1.x', 'why', 'granted', 'data owner')"
        )
    Vault(fresh_dsn)
    Vault(fresh_dsn)  # idempotent
    insert = (
        "INSERT INTO reidentification_audit (requester, approver, token, justification, outcome, reason)"
        " VALUES ('a', 'b', 'k1.x', 'why', %s, 'test')"
    )
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(insert, ("break_glass",))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, ("waved_through",))
    rows = query(fresh_dsn, "SELECT requester, approver, outcome FROM reidentification_audit ORDER BY id")
    assert rows == [("tvp:dpo", None, "granted"), ("a", "b", "break_glass")]
