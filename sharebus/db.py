"""`sharebus db init`: the database's roles, schemas and grants (streams.pg_roles), idempotently."""

from __future__ import annotations

import psycopg
import typer

from sharebus.common import fail
from streams.pg import ensure_database, first_line
from streams.pg_roles import OWNER, init
from streams.settings import get_settings

db_app = typer.Typer(help="PostgreSQL roles and schemas.", no_args_is_help=True)


@db_app.command("init")
def init_command(
    admin_dsn: str | None = typer.Option(
        None,
        "--admin-dsn",
        help="An administrator's DSN, used for this only (default: SHARINGBUS_POSTGRES_DSN)",
    ),
    owner: str = typer.Option(OWNER, "--owner", help="NOLOGIN role that owns the schemas and tables"),
) -> None:
    """Create (or converge) one login role per worker role, the schemas, the tables and their grants.

    Each role's name and password come from its DSN (SHARINGBUS_POSTGRES_DSN_<ROLE>); a role
    without one is `sharingbus_<role>` with no password. Safe to run again after every upgrade.
    """
    settings = get_settings()
    dsn = admin_dsn or settings.postgres_dsn
    ensure_database(dsn)
    try:
        roles = init(dsn, settings, owner)
    except psycopg.Error as exc:
        fail(f"db init: PostgreSQL refused: {first_line(exc)}")
    for login in roles:
        schemas = ", ".join(login.schemas())
        secret = "password from its DSN" if login.password else "no password (set one in its DSN)"
        typer.echo(f"{login.role}\t{login.name}\t{schemas}\t{secret}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
