"""PostgreSQL roles and schemas: every worker connects as its own login role with only what it needs.

One role for every process would let anyone holding the analysts' DSN read the vault's raw
identifiers. `init` (`sharebus db init`) makes, idempotently:

- schemas `sharingbus_vault` (raw identifiers, links, the re-identification and subject access audits),
  `sharingbus_views` (the analysts' tables) and `sharingbus_ops` (decision ledger, rights, reviews),
  owned by a NOLOGIN owner role that applies every component's DDL;
- one login role per database role in `DB_ROLES`, named (and given the password) of its DSN in
  settings (`SHARINGBUS_POSTGRES_DSN_<ROLE>`), else `sharingbus_<role>` without a password; each
  gets CONNECT, USAGE on its schemas only, the table grants in `GRANTS` and its `search_path`.

Identifiers leave the vault only through `reidentification_answer`, a SECURITY DEFINER function
that answers a request a second data owner approved and audits it (streams.privacy.vault_access);
only the rights role may call it. The rights service (erasure, retention, rectification) writes and
deletes identifiers without reading them; the enforcer may insert identifiers and see the keys of
rows it wrote, never the identifiers. The analysts' role sees the view tables only. Re-running
converges: privileges are revoked and granted afresh, so a grant removed here is removed from the
database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from streams.enforce.audit_store import SCHEMA as AUDIT_DDL
from streams.errors import ConfigurationError
from streams.linkage.review import SCHEMA as REVIEW_DDL
from streams.pg import MANAGED_SCHEMA
from streams.privacy.vault import ACCESS_SCHEMA as VAULT_ACCESS_DDL
from streams.privacy.vault import SCHEMA as VAULT_DDL
from streams.rights.access_audit import SCHEMA as ACCESS_AUDIT_DDL
from streams.rights.store import SCHEMA as RIGHTS_DDL
from streams.settings import Settings
from streams.views.sink import DDL as VIEWS_DDL

__all__ = ["DB_ROLES", "FUNCTIONS", "GRANTS", "OWNER", "SCHEMAS", "TABLES", "RoleLogin", "init", "logins"]

DB_ROLES = ("enforcer", "audit", "linker", "views", "rights", "analyst")
OWNER = "sharingbus_owner"
VAULT, VIEWS, OPS = MANAGED_SCHEMA, "sharingbus_views", "sharingbus_ops"
SCHEMAS = (VAULT, VIEWS, OPS)

# Each schema's DDL, applied by the owner with that schema first on the search path.
_DDL = (
    (VAULT, (VAULT_DDL, VAULT_ACCESS_DDL, ACCESS_AUDIT_DDL)),
    (VIEWS, (VIEWS_DDL,)),
    (OPS, (AUDIT_DDL, RIGHTS_DDL, REVIEW_DDL)),
)

TABLES: dict[str, tuple[str, ...]] = {
    VAULT: (
        "vault_subjects",
        "vault_identities",
        "vault_links",
        "vault_aliases",
        "reidentification_audit",
        "reidentification_requests",
        "subject_access_audit",
    ),
    VIEWS: ("person_profiles", "person_factors", "area_counts"),
    OPS: (
        "audit_decisions",
        "subject_requests",
        "subject_request_actions",
        "subject_restrictions",
        "subject_rights_version",
        "retention_purged",
        "linkage_reviews",
        "linkage_review_audit",
    ),
}

_DML = "SELECT, INSERT, UPDATE, DELETE"
# role -> (schema, table or "*" for every table, privileges). Nothing else is granted.
GRANTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # Writes identifiers; RETURNING the keys of new rows needs SELECT on those columns only.
    "enforcer": (
        (VAULT, "vault_subjects", "INSERT"),
        (VAULT, "vault_subjects", "SELECT (token, event_id, partner, digest)"),
        # Chain heads, to continue a chain the broker lost (streams.enforce.epoch).
        (OPS, "audit_decisions", "SELECT (chain, seq, hash)"),
    ),
    "audit": ((OPS, "audit_decisions", "SELECT, INSERT"),),
    "linker": (
        (VAULT, "vault_links", "SELECT, INSERT, UPDATE"),
        (VAULT, "vault_aliases", "SELECT, INSERT, UPDATE"),
        (OPS, "linkage_reviews", "SELECT, INSERT, UPDATE"),
        (OPS, "linkage_review_audit", "SELECT, INSERT"),
    ),
    "views": tuple((VIEWS, t, _DML) for t in TABLES[VIEWS]),
    # Erasure, rectification and retention touch every table; identifiers are written and deleted
    # (counted by `identifier_count`) but read only through `reidentification_answer` (FUNCTIONS).
    "rights": (
        (VAULT, "vault_subjects", "INSERT, DELETE"),
        (VAULT, "vault_subjects", "SELECT (token, event_id, partner, digest, recorded_at, identifier_count)"),
        (VAULT, "vault_links", _DML),
        (VAULT, "vault_aliases", _DML),
        (VAULT, "reidentification_requests", "SELECT, INSERT, UPDATE"),
        (VAULT, "reidentification_audit", "SELECT, INSERT"),
        (VAULT, "subject_access_audit", "SELECT, INSERT"),
        (VIEWS, "*", _DML),
        (OPS, "*", _DML),
    ),
    "analyst": tuple((VIEWS, t, "SELECT") for t in TABLES[VIEWS]),
}
# role -> functions it may EXECUTE (each SECURITY DEFINER, owned by the owner, audited).
FUNCTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "rights": ((VAULT, "reidentification_answer(bigint, text)"),),
}
_TEMP = {"enforcer", "rights"}  # the vault's batched writes COPY into a temporary table


@dataclass(frozen=True)
class RoleLogin:
    """The login role a database role connects as, from its DSN (a password only if the DSN has one)."""

    role: str
    name: str
    password: str | None

    def schemas(self) -> list[str]:
        return [s for s in SCHEMAS if any(g[0] == s for g in GRANTS[self.role])]


def logins(settings: Settings) -> list[RoleLogin]:
    """Each database role's login, from `SHARINGBUS_POSTGRES_DSN_<ROLE>` (else `sharingbus_<role>`)."""
    out = []
    for role in DB_ROLES:
        dsn = getattr(settings, f"postgres_dsn_{role}")
        parts = urlsplit(dsn) if dsn else None
        name = unquote(parts.username) if parts and parts.username else f"sharingbus_{role}"
        password = unquote(parts.password) if parts and parts.password else None
        out.append(RoleLogin(role, name, password))
    names = [login.name for login in out]
    if len(set(names)) != len(names) or OWNER in names:
        raise ConfigurationError(f"each database role needs its own login role; got {', '.join(names)}")
    return out


def init(admin_dsn: str, settings: Settings, owner: str = OWNER) -> list[RoleLogin]:
    """Create or converge roles, schemas, tables and grants in the admin DSN's database (one transaction).

    `admin_dsn` is a superuser's (or a role that may create roles and SET ROLE to the owner); it is
    used for this only, never by a worker.
    """
    roles = logins(settings)
    with psycopg.connect(admin_dsn, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('sharingbus.db_init'))")
        row = conn.execute("SELECT current_database(), current_user").fetchone()
        assert row is not None
        database, admin = row
        if admin in {r.name for r in roles} | {owner}:
            raise ConfigurationError(f"run db init as an administrator, not as the role {admin!r}")
        db = sql.Identifier(database)
        _ensure_role(conn, owner, login=False, password=None)
        # Membership lets a non-superuser administrator act as the owner (SET ROLE, ALTER OWNER).
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(db, sql.Identifier(owner)))
        for login in roles:
            _ensure_role(conn, login.name, login=True, password=login.password)
        _adopt_public_tables(conn, owner)
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        for schema, ddls in _DDL:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            # pg_temp last: a SECURITY DEFINER function keeps this path, and a caller's temporary
            # table must never shadow the vault's tables inside it.
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, pg_temp").format(sql.Identifier(schema)))
            for ddl in ddls:
                conn.execute(ddl)  # type: ignore[arg-type]  # static DDL of the components
        conn.execute("RESET ROLE")
        conn.execute("RESET search_path")
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        for schema in SCHEMAS:
            _revoke(conn, "PUBLIC", schema)
        for login in roles:
            _grant(conn, db, login)
    return roles


def _ensure_role(conn: psycopg.Connection[Any], name: str, *, login: bool, password: str | None) -> None:
    ident = sql.Identifier(name)
    attrs = sql.SQL("LOGIN" if login else "NOLOGIN") + sql.SQL(
        " NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
    )
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
    stmt = sql.SQL("{} {} {}").format(verb, ident, attrs)
    if password is not None:
        stmt = stmt + sql.SQL(" PASSWORD {}").format(sql.Literal(password))
    conn.execute(stmt)


def _adopt_public_tables(conn: psycopg.Connection[Any], owner: str) -> None:
    """Tables the embedded default made in `public` move to their schema, owned by the owner; its
    functions are dropped (the DDL makes them afresh in the schema, with that search path)."""
    for functions in FUNCTIONS.values():
        for _, function in functions:
            conn.execute(sql.SQL("DROP FUNCTION IF EXISTS public.{}").format(sql.SQL(function)))
    for schema, tables in TABLES.items():
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(owner)
            )
        )
        for table in tables:
            found = conn.execute(
                "SELECT n.nspname, c.relkind FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE c.relname = %s AND n.nspname IN ('public', %s)",
                (table, schema),
            ).fetchall()
            kinds: dict[str, str] = {str(nsp): str(kind) for nsp, kind in found}
            kind = kinds.get(schema) or kinds.get("public")
            if kind is None:
                continue
            what = sql.SQL("VIEW" if kind == "v" else "TABLE")
            if schema not in kinds:
                conn.execute(
                    sql.SQL("ALTER {} public.{} SET SCHEMA {}").format(
                        what, sql.Identifier(table), sql.Identifier(schema)
                    )
                )
            conn.execute(
                sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
                    what, sql.Identifier(schema), sql.Identifier(table), sql.Identifier(owner)
                )
            )


def _revoke(conn: psycopg.Connection[Any], grantee: str, schema: str) -> None:
    who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(s, who))
    conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, who))
    conn.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(s, who))
    conn.execute(sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM {}").format(s, who))


def _grant(conn: psycopg.Connection[Any], db: sql.Identifier, login: RoleLogin) -> None:
    who = sql.Identifier(login.name)
    extra = ", TEMPORARY" if login.role in _TEMP else ""
    conn.execute(sql.SQL("GRANT CONNECT" + extra + " ON DATABASE {} TO {}").format(db, who))
    for schema in SCHEMAS:
        _revoke(conn, login.name, schema)
    writes = set()
    for schema, table, privileges in GRANTS[login.role]:
        on = (
            sql.SQL("ALL TABLES IN SCHEMA {}").format(sql.Identifier(schema))
            if table == "*"
            else sql.SQL("TABLE {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        )
        conn.execute(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(on, who))  # type: ignore[arg-type]
        if "INSERT" in privileges:
            writes.add(schema)
    for schema, function in FUNCTIONS.get(login.role, ()):
        conn.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION {}.{} TO {}").format(
                sql.Identifier(schema),
                sql.SQL(function),  # static signature above
                who,
            )
        )
    for schema in login.schemas():
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), who))
    for schema in sorted(writes):  # bigserial ids
        conn.execute(
            sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(sql.Identifier(schema), who)
        )
    path = sql.SQL(", ").join(sql.Identifier(s) for s in login.schemas())
    conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path TO {}").format(who, db, path))
