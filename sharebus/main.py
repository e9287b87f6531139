"""Entry point of `sharebus`: assembles the command groups listed below, explicitly."""

from __future__ import annotations

import importlib

import psycopg
import typer

from streams.errors import SharingBusError
from streams.pg import first_line

# Each module exposes `register(app)`. Listed explicitly: no import-time discovery.
COMMAND_MODULES = [
    "broker",
    "agreements",
    "registry",
    "worker",
    "demo",
    "keys",
    "acls",
    "reidentify",
    "audit",
    "schemas",
    "publish",
    "simulate",
    "request",
    "subject_access",
    "retention",
    "auth",
    "linkage",
    "db",
]

app = typer.Typer(
    name="sharebus",
    help="Sharing Bus: multi-agency data sharing over Kafka, enforced in flight.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Settings come from SHARINGBUS_* environment variables; flags override them."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"sharebus.{_name}").register(app)


def main() -> None:
    try:
        app()
    except SharingBusError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except psycopg.OperationalError as exc:
        # Every command that needs the database meets it first at start, wherever that is.
        typer.echo(
            f"error: PostgreSQL (SHARINGBUS_POSTGRES_DSN) is not reachable: {first_line(exc)}", err=True
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
