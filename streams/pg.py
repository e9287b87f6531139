"""PostgreSQL helpers shared by the sinks, the vault and the CLI."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from streams.errors import ConfigurationError


def ensure_database(dsn: str) -> None:
    """Create the DSN's database when it does not exist (the demo's first run on a fresh machine)."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name:
        raise ConfigurationError(f"SHARINGBUS_POSTGRES_DSN names no database: {dsn}")
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise ConfigurationError(
            f"PostgreSQL at {parts.hostname}:{parts.port} is not reachable: {exc}"
        ) from exc


# The schema `sharebus db init` makes (streams.pg_roles); its presence means the roles are in place.
MANAGED_SCHEMA = "sharingbus_vault"


def managed(conn: psycopg.Connection[Any]) -> bool:
    """True when `sharebus db init` owns the tables: components then create nothing themselves.

    Their login roles may not create tables (least privilege), and `db init` applies the same DDL
    as the tables' owner, so a component's create-if-missing on connect is skipped, not failed.
    """
    row = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (MANAGED_SCHEMA,)).fetchone()
    return bool(row and row[0])
