"""`sharebus reidentify`: dual-controlled re-identification (streams.rights.reidentify).

The caller is the verified token in `SHARINGBUS_IDENTITY_TOKEN`, authorised by the rights roles
file: `request` (a data owner), `approve` or `decline` (a second data owner of the same partner),
`answer` (the requester, once approved), `break-glass` (an emergency, flagged and alerted),
`pending` (what awaits the caller's decision). Refusals exit 2, bad input or configuration 1.
"""

from __future__ import annotations

import json
from typing import NoReturn

import psycopg
import typer

from sharebus.common import fail
from streams.avro.catalogue import load_catalogue
from streams.errors import SharingBusError
from streams.identity import TokenVerifier
from streams.pg import first_line
from streams.privacy.vault_access import Identity, VaultAccess
from streams.rights.reidentify import MIN_JUSTIFICATION, DualControl, ReidentificationRefused
from streams.rights.roles import load_roles
from streams.settings import get_settings

reid_app = typer.Typer(
    help="Re-identification under dual control; the caller is SHARINGBUS_IDENTITY_TOKEN.",
    no_args_is_help=True,
)

_DSN = typer.Option(None, "--dsn", help="PostgreSQL DSN (default: the rights role's)")
_JUSTIFICATION = typer.Option(..., "--justification", help=f"Why (at least {MIN_JUSTIFICATION} characters)")
_PARTNER = typer.Option(None, "--partner", help="Owning partner (default: the caller's)")
_TOKEN = typer.Option(..., "--token", help="Person token (p.…) or linkage token")


def _service(dsn: str | None) -> tuple[DualControl, str]:
    settings = get_settings()
    roles = load_roles(settings.rights_roles_path, load_catalogue(settings.schemas_dir).partners)
    verifier = TokenVerifier.from_settings(settings)
    access = VaultAccess(dsn or settings.pg_dsn("rights"))
    bearer = settings.identity_token.get_secret_value() if settings.identity_token else ""
    return DualControl(access, roles, verifier.verify), bearer


def _guard(exc: Exception) -> NoReturn:
    """One line for every failure: a refusal exits 2, bad input, configuration or database 1."""
    if isinstance(exc, ReidentificationRefused):
        fail(str(exc), code=2)
    if isinstance(exc, SharingBusError):
        fail(str(exc))
    if isinstance(exc, psycopg.Error):
        fail(f"vault unavailable: {type(exc).__name__}: {first_line(exc)}")
    raise exc


def _print(found: list[Identity], as_json: bool) -> None:
    if not found:
        typer.echo("no identifiers from that partner for this token", err=True)
    for identity in found:
        if as_json:
            typer.echo(
                json.dumps({"kind": identity.kind, "value": identity.value, "event_id": identity.event_id})
            )
        else:
            typer.echo(f"{identity.kind}\t{identity.value}\t{identity.event_id}")


@reid_app.command("request")
def request(
    token: str = _TOKEN,
    justification: str = _JUSTIFICATION,
    partner: str | None = _PARTNER,
    dsn: str | None = _DSN,
) -> None:
    """Ask for the identifiers your own partner sent for TOKEN; prints the request id."""
    try:
        service, bearer = _service(dsn)
        request_id = service.request(bearer, token, partner, justification)
    except (SharingBusError, psycopg.Error) as exc:
        _guard(exc)
    typer.echo(f"request {request_id}: awaiting approval by a second data owner", err=True)
    typer.echo(request_id)


@reid_app.command("approve")
def approve(request_id: int = typer.Argument(..., help="Request id"), dsn: str | None = _DSN) -> None:
    """Approve another data owner's pending request (or review a break-glass answer)."""
    try:
        service, bearer = _service(dsn)
        outcome = service.approve(bearer, request_id)
    except (SharingBusError, psycopg.Error) as exc:
        _guard(exc)
    typer.echo(f"request {request_id}: {outcome}")


@reid_app.command("decline")
def decline(
    request_id: int = typer.Argument(..., help="Request id"),
    reason: str = typer.Option(..., "--reason", help="Why (audited)"),
    dsn: str | None = _DSN,
) -> None:
    """Decline (or, as its requester, withdraw) a pending request."""
    try:
        service, bearer = _service(dsn)
        service.decline(bearer, request_id, reason)
    except (SharingBusError, psycopg.Error) as exc:
        _guard(exc)
    typer.echo(f"request {request_id}: declined")


@reid_app.command("answer")
def answer(
    request_id: int = typer.Argument(..., help="Request id"),
    dsn: str | None = _DSN,
    as_json: bool = typer.Option(False, "--json", help="Print JSON Lines instead of tab-separated text"),
) -> None:
    """Print the identifiers of your approved request (once; audited with both identities)."""
    try:
        service, bearer = _service(dsn)
        found = service.answer(bearer, request_id)
    except (SharingBusError, psycopg.Error) as exc:
        _guard(exc)
    _print(found, as_json)


@reid_app.command("break-glass")
def break_glass(
    token: str = _TOKEN,
    justification: str = _JUSTIFICATION,
    partner: str | None = _PARTNER,
    dsn: str | None = _DSN,
    as_json: bool = typer.Option(False, "--json", help="Print JSON Lines instead of tab-separated text"),
) -> None:
    """Emergency: answer at once without a second approval. Flagged, alerted, reviewed afterwards."""
    try:
        service, bearer = _service(dsn)
        found = service.break_glass(bearer, token, partner, justification)
    except (SharingBusError, psycopg.Error) as exc:
        _guard(exc)
    typer.echo("warning: BREAK-GLASS answer recorded; a second data owner must review it", err=True)
    _print(found, as_json)


@reid_app.command("pending")
def pending(dsn: str | None = _DSN) -> None:
    """Requests awaiting your decision: id, partner, requester, token, justification."""
    try:
        service, bearer = _service(dsn)
        rows = service.pending(bearer)
    except (SharingBusError, psycopg.Error) as exc:
        _guard(exc)
    for r in rows:
        kind = "break-glass review" if r["break_glass"] else "approval"
        typer.echo(f"{r['id']}\t{kind}\t{r['partner']}\t{r['requester']}\t{r['token']}\t{r['justification']}")


def register(app: typer.Typer) -> None:
    app.add_typer(reid_app, name="reidentify")
