"""`sharebus retention purge`: drop what outlived its agreements' retention (run it from cron).

See `streams.rights.retention`: views contributions, vault rows and sink rows of expired events go;
the audit ledger stays (its own, longer period).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from sharebus.common import fail
from streams.agreements import load_agreements
from streams.avro.catalogue import load_catalogue
from streams.errors import SharingBusError
from streams.kafka.producer import DeliveringProducer
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.key_sources import load_keyring
from streams.rights import linkage_key_id
from streams.rights.retention import purge
from streams.rights.store import RightsStore
from streams.settings import get_settings

retention_app = typer.Typer(help="Retention per sharing agreement.")


@retention_app.command("purge")
def purge_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be purged; change nothing"),
) -> None:
    """Purge views contributions, vault rows and sink rows older than their retention."""
    settings = get_settings()
    try:
        catalogue = load_catalogue(settings.schemas_dir)
        agreements = load_agreements(settings.agreements_dir, catalogue)
        RightsStore(settings.pg_dsn("rights")).close()  # creates `retention_purged` when missing
        producer = DeliveringProducer(settings.kafka_config())
        keyring = load_keyring(settings)
        view_tokens = ViewTokens(keyring, linkage_key_id(settings, keyring))
        report = purge(
            settings.pg_dsn("rights"),
            agreements,
            catalogue,
            lambda outputs: producer.send_all(outputs, deadline_s=120),
            dry_run=dry_run,
            view_tokens=view_tokens,
        )
    except SharingBusError as exc:
        fail(str(exc))
    typer.echo(json.dumps(asdict(report), indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
