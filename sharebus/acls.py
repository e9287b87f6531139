"""`sharebus acls`: print the Kafka ACL plan for the catalogue's partners and the agreed recipients."""

from __future__ import annotations

from pathlib import Path

import typer

from sharebus.common import fail
from streams.errors import ConfigurationError
from streams.kafka.acls import acl_plan, read_recipients, render_json, render_text
from streams.settings import Settings


def acls(
    fmt: str = typer.Option("text", "--format", help="text (kafka-acls commands) or json"),
    recipients_file: Path | None = typer.Option(
        None, "--recipients", help="Recipients YAML (default: <agreements_dir>/recipients.yaml)"
    ),
    bootstrap: str = typer.Option("$BOOTSTRAP", help="Bootstrap address written into text output"),
) -> None:
    """Print which principal may read or write which topic; everything else is denied."""
    if fmt not in ("text", "json"):
        fail(f"--format must be text or json, not {fmt!r}")
    settings = Settings()
    from streams.avro.catalogue import load_catalogue  # late: keeps `sharebus --help` fast

    try:
        partners = sorted(load_catalogue(settings.schemas_dir).partners)
        recipients = read_recipients(recipients_file or settings.agreements_dir / "recipients.yaml")
        plan = acl_plan(partners, recipients, consumer_group=settings.consumer_group)
    except (ConfigurationError, ValueError) as exc:
        fail(str(exc))
    typer.echo(render_json(plan) if fmt == "json" else render_text(plan, bootstrap), nl=False)


def register(app: typer.Typer) -> None:
    app.command("acls")(acls)
