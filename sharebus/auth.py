"""`sharebus auth token`: a bearer token from the embedded issuer, for the API, dashboard and CLI.

The token is checked as the bus would check it (recipient listed in `recipients.yaml`, tier within
its cap) before it is printed, so a typo fails here with one line rather than at the API later.
"""

from __future__ import annotations

import getpass

import typer

from sharebus.common import fail
from streams.errors import SharingBusError
from streams.identity import LocalIssuer, TokenVerifier
from streams.identity.recipients import RecipientCaps
from streams.identity.verifier import StaticKeys
from streams.settings import Settings, get_settings

auth_app = typer.Typer(help="Identity: bearer tokens of the embedded issuer.", no_args_is_help=True)


def mint_checked(
    settings: Settings,
    subject: str,
    *,
    recipient: str | None = None,
    tier: str | None = None,
    partner: str | None = None,
    roles: tuple[str, ...] | list[str] = (),
    ttl_seconds: int | None = None,
) -> str:
    """A token of the local issuer that its own verifier accepts (SharingBusError, one line, if not)."""
    issuer = LocalIssuer.from_settings(settings)
    minted = issuer.mint(
        subject,
        recipient=recipient,
        tier=tier,  # type: ignore[arg-type]  # checked by mint
        partner=partner,
        roles=roles,
        ttl_seconds=ttl_seconds,
    )
    local = TokenVerifier(
        StaticKeys({issuer.kid: issuer.public_key}),
        issuer=issuer.issuer,
        audience=issuer.audience,
        caps=RecipientCaps.in_dir(settings.agreements_dir),
        claims=issuer.claims,
    )
    local.verify(minted)
    return minted


@auth_app.command("token")
def token(
    recipient: str | None = typer.Option(None, "--recipient", help="Recipient id (recipients.yaml)"),
    tier: str | None = typer.Option(None, "--tier", help="aggregate, area or individual (needs --recipient)"),
    subject: str | None = typer.Option(None, "--subject", help="Who it is for (default: local:<user>)"),
    partner: str | None = typer.Option(None, "--partner", help="Partner the caller acts for"),
    role: list[str] = typer.Option([], "--role", help="A role of the caller (repeatable), e.g. ops"),
    ttl: int | None = typer.Option(None, "--ttl", min=1, help="Lifetime in seconds (default: settings)"),
) -> None:
    """Print a signed bearer token (alone on the last line) for `Authorization: Bearer ...`."""
    settings = get_settings()
    try:
        minted = mint_checked(
            settings,
            subject or f"local:{getpass.getuser()}",
            recipient=recipient,
            tier=tier,
            partner=partner,
            roles=role,
            ttl_seconds=ttl,
        )
    except SharingBusError as exc:
        fail(str(exc))
    if settings.auth_jwks_url or settings.auth_public_key_path:
        typer.echo("warning: the bus is configured to trust another issuer, not this local one", err=True)
    typer.echo(minted)


def register(app: typer.Typer) -> None:
    app.add_typer(auth_app, name="auth")
