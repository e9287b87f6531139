"""`sharebus acls`: print the Kafka ACL plan for the catalogue's partners, the worker roles and the
recipients, from the agreements (what each recipient may read is what its agreements give it)."""

from __future__ import annotations

from pathlib import Path

import typer

from sharebus.common import fail
from streams.errors import ConfigurationError
from streams.settings import ROOT, Settings

DEFAULT_PRINCIPALS = ROOT / "deploy" / "kafka-principals.yaml"


def acls(
    fmt: str = typer.Option("text", "--format", help="text (kafka-acls commands) or json"),
    agreements_dir: Path | None = typer.Option(
        None, "--agreements", help="Agreements directory (default: SHARINGBUS_AGREEMENTS_DIR)"
    ),
    principals_file: Path | None = typer.Option(
        None, "--principals", help=f"Worker roles' principals YAML (default: {DEFAULT_PRINCIPALS.name})"
    ),
    bootstrap: str = typer.Option("$BOOTSTRAP", help="Bootstrap address written into text output"),
) -> None:
    """Print which principal may read, write or create which topic; everything else is denied."""
    if fmt not in ("text", "json"):
        fail(f"--format must be text or json, not {fmt!r}")
    settings = Settings()
    # late imports: keep `sharebus --help` fast
    from streams.agreements import load_agreements
    from streams.avro.catalogue import load_catalogue
    from streams.kafka.acls import acl_plan, read_principals, recipient_access, render_json, render_text

    try:
        catalogue = load_catalogue(settings.schemas_dir)
        agreements = load_agreements(agreements_dir or settings.agreements_dir, catalogue)
        principals = read_principals(principals_file or DEFAULT_PRINCIPALS)
        plan = acl_plan(
            sorted(catalogue.partners),
            recipient_access(agreements),
            principals,
            consumer_group=settings.consumer_group,
        )
    except (ConfigurationError, ValueError) as exc:
        fail(_one_line(str(exc)))
    typer.echo(render_json(plan) if fmt == "json" else render_text(plan, bootstrap), nl=False)


def _one_line(message: str) -> str:
    """A message as one line: for `invalid agreements:` and a problem a line, the first problem."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    more = f" (and {len(lines) - 2} more: run sharebus agreements check)" if len(lines) > 2 else ""
    return f"{lines[1]}{more}"


def register(app: typer.Typer) -> None:
    app.command("acls")(acls)
