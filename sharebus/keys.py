"""`sharebus keys`: rotate, retire and list pseudonymisation keys. Prints key ids, never secrets."""

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


@keys_app.command("retire")
def retire(
    kid: str = typer.Argument(..., help="Key id to remove for good"), keyring: Path | None = _KEYRING
) -> None:
    """Remove a key id whose tokens nobody needs recomputed (docs/operations.md, "Keys").

    Refused for the active key and for the key linkage is pinned to: retiring it would give every
    person new linkage tokens and split every linked cluster.
    """
    path = _path(keyring)
    settings = get_settings()
    try:
        ring = KeyRing.load(path)
        linkage = settings.linkage_key_id or (ring.ids[0] if ring.ids else None)
        if kid == linkage and kid in ring.ids:
            fail(
                f"key {kid!r} is the linkage key (SHARINGBUS_LINKAGE_KEY_ID, default the first key): "
                "pin linkage to another key and re-link first (docs/linkage.md)"
            )
        ring.retire(kid, path)
    except ConfigurationError as exc:
        fail(str(exc))
    typer.echo(f"retired {kid}")


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


@keys_app.command("derive-views")
def derive_views(
    out: Path = typer.Option(..., "--out", help="File for the derived keys (written with mode 0600)"),
    keyring: Path | None = _KEYRING,
) -> None:
    """Derive every recipient's person-view domain key for a linker that holds no master key."""
    from streams.linkage.view_tokens import view_keys
    from streams.rights import linkage_key_id

    settings = get_settings()
    try:
        ring = KeyRing.load(_path(keyring))
        keys = view_keys(ring, settings.agreements_dir, linkage_key_id(settings, ring))
        keys.save(out)
    except ConfigurationError as exc:
        fail(str(exc))
    typer.echo(f"{out}: {keys}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
