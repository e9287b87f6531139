"""`sharebus reidentify`: a data owner asks the vault who a token is (audited, justification required)."""

from __future__ import annotations

import json

import psycopg
import typer

from sharebus.common import fail
from streams.privacy.vault import MIN_JUSTIFICATION, ReidentificationRefused, Vault
from streams.settings import get_settings


def reidentify(
    token: str = typer.Option(..., "--token", help="Person token (p.…) or linkage token"),
    requester: str = typer.Option(..., "--requester", help="Who asks, as <partner>:<person>"),
    justification: str = typer.Option(
        ..., "--justification", help=f"Why (at least {MIN_JUSTIFICATION} characters; audited)"
    ),
    partner: str | None = typer.Option(None, "--partner", help="Owning partner (default: the requester's)"),
    dsn: str | None = typer.Option(None, "--dsn", help="PostgreSQL DSN (default: SHARINGBUS_POSTGRES_DSN)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON Lines instead of tab-separated text"),
) -> None:
    """Print the identifiers the requester's own partner sent for TOKEN; every request is audited."""
    try:
        vault = Vault(dsn or get_settings().pg_dsn("rights"))
        found = vault.reidentify(token, requester, partner, justification)
    except ReidentificationRefused as exc:
        fail(str(exc), code=2)
    except psycopg.Error as exc:
        fail(f"vault unavailable: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if not found:
        typer.echo("no identifiers from that partner for this token", err=True)
        return
    for identity in found:
        if as_json:
            typer.echo(
                json.dumps({"kind": identity.kind, "value": identity.value, "event_id": identity.event_id})
            )
        else:
            typer.echo(f"{identity.kind}\t{identity.value}\t{identity.event_id}")


def register(app: typer.Typer) -> None:
    app.command("reidentify")(reidentify)
