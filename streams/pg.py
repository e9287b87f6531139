"""PostgreSQL helpers shared by the sinks, the vault and the CLI."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from streams.errors import ConfigurationError

log = logging.getLogger(__name__)

T = TypeVar("T")


def ensure_database(dsn: str, setting: str = "SHARINGBUS_POSTGRES_DSN") -> None:
    """Create the DSN's database when it does not exist (the demo's first run on a fresh machine).

    `setting` names where the DSN came from, for the one-line error a newcomer reads.
    """
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
            f"PostgreSQL ({setting}) is not reachable at {parts.hostname}:{parts.port}: {first_line(exc)}"
        ) from exc


def first_line(exc: BaseException) -> str:
    """libpq's message without its hint lines ("Is the server running...?"): errors are one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# The schema `sharebus db init` makes (streams.pg_roles); its presence means the roles are in place.
MANAGED_SCHEMA = "sharingbus_vault"


def managed(conn: psycopg.Connection[Any]) -> bool:
    """True when `sharebus db init` owns the tables: components then create nothing themselves.

    Their login roles may not create tables (least privilege), and `db init` applies the same DDL
    as the tables' owner, so a component's create-if-missing on connect is skipped, not failed.
    """
    row = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (MANAGED_SCHEMA,)).fetchone()
    return bool(row and row[0])


def retry_while_down(
    call: Callable[[], T],
    *,
    what: str,
    unavailable: tuple[type[BaseException], ...] = (psycopg.OperationalError,),
    backoff: float = 1.0,
    max_backoff: float = 10.0,
    stopping: threading.Event | None = None,
) -> T:
    """`call()`, repeated with a doubling pause while it raises one of `unavailable` (PostgreSQL down).

    A stage whose writes must not go missing blocks here instead of dropping them: lag grows and
    nothing is lost. Any other error passes straight through, because waiting does not mend bad data.
    Once `stopping` is set the wait ends and the last error is raised, so a shutdown never hangs.
    """
    delay, attempt = backoff, 0
    while True:
        try:
            return call()
        except unavailable as exc:
            attempt += 1
            if stopping is not None and stopping.is_set():
                raise
            first = str(exc).strip().splitlines()[:1]
            log.warning(
                "%s: PostgreSQL unavailable (attempt %d), retrying in %.1fs: %s",
                what,
                attempt,
                delay,
                first[0] if first else type(exc).__name__,
            )
            if stopping is None:
                time.sleep(delay)
            elif stopping.wait(delay):
                raise
            delay = min(delay * 2, max_backoff)
