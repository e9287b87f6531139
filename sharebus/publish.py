"""`sharebus publish`: send a partner's CSV or JSON Lines extract, row by row, with a report.

Prints `published: N, rejected: M` and writes `<file>.rejections.csv` (row, field, reason) beside
the input; exits 1 when any row was rejected, so scripts notice. Event ids come from each row's
record key (schemas/), so publishing an extract again, or one that overlaps it, sends the same
events, which the bus de-duplicates; a row whose content changed since it was published from
here (the ledger in `data_dir/published/`) is sent as a rectification of its event. A file that
cannot be read as a whole (wrong encoding, a quote never closed, no rows) is one line and exit
status 1 before anything is sent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from sharebus.common import fail
from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.errors import SharingBusError
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.publish.extracts import load_mapping, publish_extract
from streams.publish.ledger import PublishLedger
from streams.publish.publisher import Publisher
from streams.publish.record_ids import RecordIds
from streams.settings import get_settings


def publish(
    file: Path = typer.Argument(..., help="CSV or JSON Lines (.jsonl) extract", exists=True, dir_okay=False),
    partner: str = typer.Option(..., "--partner", help="Publishing partner id (schemas/partners.yaml)"),
    event_type: str = typer.Option(
        ..., "--event-type", help="Event type of every row, e.g. education.exclusion"
    ),
    mapping: Path | None = typer.Option(None, "--mapping", help="YAML: source column -> dotted field path"),
    registry: str | None = typer.Option(None, "--registry", help="Registry URL (default: settings)"),
    encoding: str = typer.Option(
        "utf-8",
        "--encoding",
        help="Text encoding of the file, e.g. cp1252 for a spreadsheet saved on Windows",
    ),
    ledger: bool = typer.Option(
        True,
        "--ledger/--no-ledger",
        help="Remember what was published, so a corrected row rectifies its event",
    ),
    requester: str = typer.Option(
        "sharebus-publish", "--requester", help="Who asks for the rectifications of corrected rows (audited)"
    ),
) -> None:
    """Publish an extract; bad rows are reported, never fatal."""
    settings = get_settings()
    if registry:
        settings = settings.model_copy(update={"schema_registry_url": registry})
    try:
        catalogue = load_catalogue(settings.schemas_dir)
        if event_type not in catalogue.partner(partner).event_types:
            fail(f"partner {partner} does not publish {event_type} (schemas/partners.yaml)")
        columns = load_mapping(mapping) if mapping else None
        ensure_topics(settings, [TopicSpec(topics.raw(partner, event_type))])
        console = Console(stderr=True)
        progress = Progress(
            TextColumn(f"[bold]{file.name}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not sys.stderr.isatty(),
            transient=True,
        )
        ids = RecordIds.load_or_create(settings.record_id_key_path)
        book = PublishLedger.for_partner(settings.data_dir, partner, ids) if ledger else None
        with (
            progress,
            Publisher(
                settings, partner, catalogue, record_ids=ids, ledger=book, requester=requester
            ) as publisher,
        ):
            task = progress.add_task("publish", total=file.stat().st_size)
            summary = publish_extract(
                publisher,
                event_type,
                file,
                columns,
                on_progress=lambda done, _: progress.update(task, completed=done),
                encoding=encoding,
            )
    except SharingBusError as exc:
        fail(str(exc))
    corrected = f", corrected: {summary.corrected}" if summary.corrected else ""
    typer.echo(f"published: {summary.published}, rejected: {summary.rejected}{corrected}")
    if summary.without_key:
        key = ", ".join(catalogue.event_type(event_type).record_key)
        typer.echo(
            f"warning: {summary.without_key} row(s) had an empty record key field ({key}) and got "
            "random event ids: publishing them again would make new events",
            err=True,
        )
    if summary.report is not None:
        typer.echo(f"rejections: {summary.report}", err=True)
    if summary.rejected:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
