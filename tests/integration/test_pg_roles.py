"""`sharebus db init` on real PostgreSQL: each role connects as itself and reads only what it needs.

The test makes its own database and uniquely named roles (roles are cluster-wide) and drops both.
The matrix below is the contract: every role x table is tried with a real `SELECT *`, and every
role x the vault's answering function with a real call. Identifiers are read by nobody directly:
only through the function, for a request a second data owner approved, audited.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streams.pg_roles import DB_ROLES, SCHEMAS, TABLES, init
from streams.privacy.vault import Vault
from streams.privacy.vault_access import VaultAccess
from streams.rights.access_audit import AccessAudit
from streams.settings import Settings
from streams.views.sink import ViewsSink
from tests.conftest import PG_ADMIN_DSN
from tests.support.reid import Identities, owners_of

ROOT = Path(__file__).resolve().parents[2]
BASE = PG_ADMIN_DSN.rsplit("/", 1)[0]  # postgresql://postgres@127.0.0.1:5432
HOST = BASE.split("@", 1)[1]

V, W, OPS = SCHEMAS
# role -> tables it may SELECT * from; every other table in the three schemas is refused.
READABLE: dict[str, set[str]] = {
    "enforcer": set(),
    "audit": {f"{OPS}.audit_decisions"},
    "linker": {
        f"{V}.vault_links",
        f"{V}.vault_aliases",
        f"{OPS}.linkage_reviews",
        f"{OPS}.linkage_review_audit",
    },
    "views": {f"{W}.person_profiles", f"{W}.person_factors", f"{W}.area_counts"},
    # Everything but the identifiers (vault_subjects.identifiers and the view over them).
    "rights": {
        f"{s}.{t}"
        for s, tables in TABLES.items()
        for t in tables
        if (s, t) not in {(V, "vault_subjects"), (V, "vault_identities")}
    },
    "analyst": {f"{W}.person_profiles", f"{W}.person_factors", f"{W}.area_counts"},
}
ALL_TABLES = sorted(f"{s}.{t}" for s, tables in TABLES.items() for t in tables)


class Db:
    def __init__(self, name: str, prefix: str) -> None:
        self.name, self.prefix = name, prefix
        self.admin = f"{BASE}/{name}"
        self.owner = f"{prefix}owner"
        self.settings = Settings(
            postgres_dsn=self.admin,
            **{f"postgres_dsn_{r}": f"postgresql://{prefix}{r}@{HOST}/{name}" for r in DB_ROLES},
        )

    def dsn(self, role: str) -> str:
        return self.settings.pg_dsn(role)


@pytest.fixture
def db() -> Iterator[Db]:
    u = uuid.uuid4().hex[:8]
    d = Db(f"sharingbus_roles_{u}", f"sbt_{u}_")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{d.name}"')
    try:
        yield d
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{d.name}" WITH (FORCE)')
            for role in [*(f"{d.prefix}{r}" for r in DB_ROLES), d.owner]:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _can_read(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(f"SELECT * FROM {table} LIMIT 1").fetchall()
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def _seed(db: Db) -> tuple[str, str]:
    """Each worker writes through its own role, as it does in production."""
    tok, person = "k1.tok" + uuid.uuid4().hex[:6], "p.person" + uuid.uuid4().hex[:6]
    enforcer = Vault(db.dsn("enforcer"))
    try:
        assert enforcer.record("tvp", tok, {"pnc_id": "19/0012345X", "family_name": "Smith"}, "ev1") == 2
        assert enforcer.record("tvp", tok, {"pnc_id": "19/0012345X", "family_name": "Smith"}, "ev1") == 0
    finally:
        enforcer.close()
    Vault(db.dsn("linker")).link_many([("ev1", 0, person, [tok])])
    with psycopg.connect(db.dsn("views"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO person_profiles (person_token, score, factors) VALUES (%s, 1.0, '{}'::jsonb)",
            (person,),
        )
    return tok, person


def test_each_role_reads_only_its_tables(db: Db) -> None:
    roles = init(db.admin, db.settings, db.owner)
    init(db.admin, db.settings, db.owner)  # idempotent: a second run converges, fails nothing
    assert [r.name for r in roles] == [f"{db.prefix}{r}" for r in DB_ROLES]
    _seed(db)
    got = {role: {t for t in ALL_TABLES if _can_read(db.dsn(role), t)} for role in DB_ROLES}
    assert got == READABLE


def test_analyst_reading_the_vault_is_refused(db: Db, tmp_path: Path) -> None:
    init(db.admin, db.settings, db.owner)
    tok, person = _seed(db)
    with psycopg.connect(db.dsn("analyst"), autocommit=True) as conn:
        assert conn.execute("SELECT person_token FROM person_profiles").fetchall() == [(person,)]
        for query in (
            "SELECT * FROM sharingbus_vault.vault_subjects",
            "SELECT * FROM sharingbus_vault.vault_identities",
            "SELECT * FROM sharingbus_vault.reidentification_requests",
            "SELECT * FROM sharingbus_vault.subject_access_audit",
            "SELECT * FROM sharingbus_vault.reidentification_answer(1, 'x')",
            "INSERT INTO person_profiles (person_token, score, factors) VALUES ('p.x', 1, '{}')",
            "CREATE TABLE public.stolen (x text)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)
    # The enforcer writes identifiers and reads back only the keys of what it wrote.
    with psycopg.connect(db.dsn("enforcer"), autocommit=True) as conn:
        assert conn.execute("SELECT token FROM vault_subjects").fetchall() == [(tok,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT identifiers FROM vault_subjects")
    # The rights role cannot read identifiers either, and gets nothing from the function unapproved.
    ids = Identities(tmp_path, owners_of("tvp"))
    service = ids.service(db.dsn("rights"))
    request_id = service.request(ids.token("tvp.owner.a"), person, "tvp", "Safeguarding referral 2026/0142")
    with psycopg.connect(db.dsn("rights"), autocommit=True) as conn:
        for query in (
            "SELECT identifiers FROM vault_subjects",
            "SELECT * FROM vault_identities",
            "UPDATE reidentification_audit SET outcome = 'granted'",
            "DELETE FROM reidentification_audit",
            "UPDATE subject_access_audit SET outcome = 'answered'",
            "DELETE FROM subject_access_audit",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not approved"):
            conn.execute("SELECT * FROM reidentification_answer(%s, 'tvp.owner.a')", (request_id,))
        # A temporary table cannot stand in for the requests inside the function (pg_temp is last).
        conn.execute("CREATE TEMP TABLE reidentification_requests AS SELECT * FROM reidentification_requests")
        conn.execute("UPDATE pg_temp.reidentification_requests SET state = 'approved', approver = 'me'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not approved"):
            conn.execute(
                "SELECT * FROM sharingbus_vault.reidentification_answer(%s, 'tvp.owner.a')", (request_id,)
            )
    # The rights role audits subject access (insert and read, as above never change).
    sar = AccessAudit(db.dsn("rights"))
    sar.record("refused", requester=None, partner="tvp", searched_by=["upn"], reason="no token")
    assert [(r["requester"], r["outcome"]) for r in sar.log()] == [("(unverified)", "refused")]
    # Approved by a second owner, the rights service answers and the function audits it.
    service.approve(ids.token("tvp.owner.b"), request_id)
    found = service.answer(ids.token("tvp.owner.a"), request_id)
    assert sorted((i.kind, i.value) for i in found) == [("family_name", "Smith"), ("pnc_id", "19/0012345X")]
    rows = VaultAccess(db.dsn("rights")).audit_log(person)
    assert [(r["outcome"], r["approver"]) for r in rows] == [
        ("requested", None),
        ("approved", "tvp.owner.b"),
        ("granted", "tvp.owner.b"),
    ]
    # Erasure by the rights role deletes and counts identifiers it cannot read.
    assert Vault(db.dsn("rights")).forget(tok) == 2


def test_only_the_rights_role_may_call_the_vaults_answering_function(db: Db) -> None:
    init(db.admin, db.settings, db.owner)
    for role in DB_ROLES:
        with psycopg.connect(db.dsn(role), autocommit=True) as conn:
            try:
                conn.execute("SELECT * FROM sharingbus_vault.reidentification_answer(0, 'nobody')").fetchall()
            except psycopg.errors.InsufficientPrivilege as exc:
                called = "no re-identification request" in str(exc)  # inside: it ran, and refused
            assert called == (role == "rights"), role
    with psycopg.connect(db.admin) as conn:
        row = conn.execute(
            "SELECT prosecdef, proconfig, pg_get_userbyid(proowner) FROM pg_proc"
            " WHERE proname = 'reidentification_answer'"
        ).fetchone()
    assert row == (True, ["search_path=sharingbus_vault, pg_temp"], db.owner)


def test_login_roles_hold_no_power(db: Db) -> None:
    init(db.admin, db.settings, db.owner)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin "
            "FROM pg_roles WHERE rolname LIKE %s ORDER BY rolname",
            (db.prefix + "%",),
        ).fetchall()
    assert {r[0]: r[1:] for r in rows} == {
        **{f"{db.prefix}{r}": (False, False, False, False, True) for r in DB_ROLES},
        db.owner: (False, False, False, False, False),
    }


def test_views_sink_runs_as_its_role_on_managed_tables(db: Db) -> None:
    """The components' create-if-missing is skipped where `db init` owns the tables."""
    init(db.admin, db.settings, db.owner)
    with ViewsSink(db.dsn("views")) as sink:
        assert sink.delete_people(["p.none"]) == 0


def test_db_init_command_lists_roles(db: Db) -> None:
    env = {**db.settings.to_env(), "PATH": str(Path(sys.executable).parent)}
    cmd = [sys.executable, "-m", "sharebus.main", "db", "init", "--owner", db.owner]
    first = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert [line.split("\t")[:2] for line in first.stdout.splitlines()] == [
        [r, f"{db.prefix}{r}"] for r in DB_ROLES
    ]
    again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    # A worker role's own DSN as the administrator: one line, non-zero, no traceback.
    bad = subprocess.run(
        [*cmd, "--admin-dsn", db.dsn("analyst")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_worker_stores_run_as_their_roles(db: Db) -> None:
    """The audit sink, the linker's review queue and the rights store work under their own roles."""
    from streams.enforce.audit import AuditChain
    from streams.enforce.audit_store import AuditStore, AuditStoreError
    from streams.linkage.review import ReviewStore
    from streams.rights.store import RightsStore
    from tests.integration.test_audit_store import decide

    init(db.admin, db.settings, db.owner)
    chain = AuditChain("roles-test")
    with AuditStore(db.dsn("audit")) as ledger:
        ledger.ensure_schema()
        assert ledger.write_many([decide(chain, "ev-1", "vru"), decide(chain, "ev-2", "vru")]) == 2
    assert ReviewStore(db.dsn("linker")).pending() == []
    RightsStore(db.dsn("rights")).close()
    with AuditStore(db.dsn("analyst")) as analyst, pytest.raises(AuditStoreError):
        analyst.write_many([decide(chain, "ev-3", "vru")])  # its search path holds no ledger
    with psycopg.connect(db.dsn("analyst")) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM sharingbus_ops.audit_decisions")
