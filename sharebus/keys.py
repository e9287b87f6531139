"""`sharebus keys`: rotate and list pseudonymisation keys. Prints key ids, never secrets."""

from __future__ import annotations

from pathlib import Path

import typer

from sharebus.common import fail
from streams.errors import ConfigurationError
from streams.privacy.keys import KeyRing
from streams.settings import get_settings

keys_app = typer.Typer(help="Pseudonymisation key ring (ids only, never secrets).", no_args_is_help=True)

_KEYRING = typer.Option(None, "--keyring", help="Key ring file (default: SHARINGBUS_KEYRING_PATH)")


def _path(keyring: Path | None) -> Path:
    return keyring or get_settings().keyring_path


@keys_app.command("rotate")
def rotate(keyring: Path | None = _KEYRING) -> None:
    """Add a fresh key and make it active (old keys stay, so old tokens can still be recomputed)."""
    path = _path(keyring)
    try:
        if not path.exists():
            typer.echo(KeyRing.load_or_create(path).active_id)
            return
        typer.echo(KeyRing.load(path).rotate(path))
    except ConfigurationError as exc:
        fail(str(exc))


@keys_app.command("list")
def list_keys(keyring: Path | None = _KEYRING) -> None:
    """Key ids with their creation dates; the active one is marked."""
    try:
        ring = KeyRing.load(_path(keyring))
    except ConfigurationError as exc:
        fail(str(exc))
    for kid in ring.ids:
        marker = "  (active)" if kid == ring.active_id else ""
        typer.echo(f"{kid}\t{ring.created(kid) or '-'}{marker}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
