"""PostgreSQL helpers shared by the sinks, the vault and the CLI."""

from __future__ import annotations

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
