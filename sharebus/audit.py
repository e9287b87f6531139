"""`sharebus audit event | subject | verify | reload`: who received what, when, why; is the ledger intact.

`event` and `subject` answer from the PostgreSQL copy (subject access, DPO control 11); `verify`
reads the ledger topic itself to its end and checks every hash chain (control 8), exiting 1 on
any break so it can run from cron or CI; `reload` replays the topic into PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sharebus.common import fail
from streams import topics
from streams.enforce.audit_store import AuditStore
from streams.enforce.audit_verify import VerifyReport, verify
from streams.errors import SharingBusError
from streams.settings import get_settings

audit_app = typer.Typer(help="Audit ledger: decisions per event or subject, and chain verification.")

_DSN = typer.Option(None, "--dsn", help="PostgreSQL DSN (default: SHARINGBUS_POSTGRES_DSN)")
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table")


def _store(dsn: str | None) -> AuditStore:
    return AuditStore(dsn or get_settings().pg_dsn("rights"))


def _agreement(rec: dict[str, Any]) -> str:
    if not rec.get("agreement_id"):
        return "-"
    version = rec.get("agreement_version")
    return f"{rec['agreement_id']} v{version}" if version else str(rec["agreement_id"])


def _fields(paths: Sequence[str] | None) -> str:
    return ", ".join(paths or []) or "-"


def _console() -> Console:
    """Wide when piped, so nothing an auditor needs is cut off; long cells wrap, never truncate."""
    console = Console()
    return console if console.is_terminal else Console(width=220)


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    return table


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def _query(dsn: str | None, what: str, arg: str) -> list[dict[str, Any]]:
    try:
        with _store(dsn) as store:
            return store.by_event(arg) if what == "event" else store.by_subject(arg)
    except SharingBusError as exc:
        fail(str(exc))


def event(
    event_id: str = typer.Argument(..., help="Event id (envelope.event_id)"),
    dsn: str | None = _DSN,
    as_json: bool = _JSON,
) -> None:
    """Every recipient's decision on one event: outcome, agreement, fields released, when."""
    records = _query(dsn, "event", event_id)
    if as_json:
        _print_json(records)
        return
    if not records:
        typer.echo(f"no decisions recorded for event {event_id}", err=True)
        return
    first = records[0]
    table = _table(
        f"event {event_id} ({first['event_type']} from {first['source_partner']})",
        ("recipient", "outcome", "agreement", "output topic", "at", "released", "withheld", "reason"),
    )
    for rec in records:
        table.add_row(
            rec["recipient"],
            rec["outcome"],
            _agreement(rec),
            rec.get("output_topic") or "-",
            rec["at"],
            _fields(rec.get("released")),
            _fields(rec.get("withheld")),
            rec["reason"],
        )
    _console().print(table)


def subject(
    token: str = typer.Argument(..., help="A recipient-domain subject token (k1.…)"),
    dsn: str | None = _DSN,
    as_json: bool = _JSON,
) -> None:
    """Everything released about one subject (by token): who received what, when, under which agreement."""
    records = _query(dsn, "subject", token)
    if as_json:
        _print_json(records)
        return
    if not records:
        typer.echo(f"nothing released with subject token {token}", err=True)
        return
    table = _table(
        f"released with subject token {token}: {len(records)} disclosures",
        ("at", "event", "event type", "from", "recipient", "agreement", "output topic", "released"),
    )
    for rec in records:
        table.add_row(
            rec["at"],
            rec["event_id"],
            rec["event_type"],
            rec["source_partner"],
            rec["recipient"],
            _agreement(rec),
            rec.get("output_topic") or "-",
            _fields(rec.get("released")),
        )
    _console().print(table)


def _report_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "topic": report.topic,
        "ok": report.ok,
        "records": report.records,
        "chains": {name: asdict(summary) for name, summary in sorted(report.chains.items())},
        "breaks": [asdict(b) for b in report.breaks],
        "epochs": [asdict(e) for e in report.epochs],
    }


def verify_command(
    topic: str = typer.Option(topics.AUDIT_DECISIONS, "--topic", help="Audit topic to verify"),
    bootstrap_servers: str | None = typer.Option(
        None, "--bootstrap-servers", help="Kafka bootstrap servers (default: SHARINGBUS_BOOTSTRAP_SERVERS)"
    ),
    against_db: bool = typer.Option(
        False, "--against-db", help="Also require every chain head stored in PostgreSQL (catches a cut tail)"
    ),
    dsn: str | None = _DSN,
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds allowed to read the topic to its end"),
    as_json: bool = _JSON,
) -> None:
    """Read the whole audit topic and check every hash chain; exit 1 on any break."""
    settings = get_settings()
    if bootstrap_servers:
        settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
    try:
        if against_db:
            with AuditStore(dsn or settings.pg_dsn("rights")) as store:
                report = verify(
                    settings.kafka_config(),
                    topic,
                    timeout=timeout,
                    anchors=store.chain_heads(),
                    stored=store.record_at,
                )
        else:
            report = verify(settings.kafka_config(), topic, timeout=timeout)
    except SharingBusError as exc:
        fail(str(exc))
    if as_json:
        _print_json(_report_json(report))
    else:
        status = "OK" if report.ok else f"{len(report.breaks)} BREAKS"
        typer.echo(f"audit verify {topic}: {report.records} records in {len(report.chains)} chains: {status}")
        if report.epochs:
            checked = (
                "links checked against PostgreSQL" if against_db else "check their links with --against-db"
            )
            typer.echo(
                f"{len(report.epochs)} chains continue from PostgreSQL after an epoch record ({checked})"
            )
        if report.breaks:
            table = _table("breaks", ("chain", "seq", "partition@offset", "problem"))
            for b in report.breaks:
                where = f"{b.partition}@{b.offset}" if b.offset >= 0 else "-"
                table.add_row(b.chain or "?", "-" if b.seq is None else str(b.seq), where, b.problem)
            _console().print(table)
    if not report.ok:
        raise typer.Exit(1)


def reload_command(
    topic: str = typer.Option(topics.AUDIT_DECISIONS, "--topic", help="Audit topic to replay"),
    dsn: str | None = _DSN,
) -> None:
    """Replay the ledger topic into PostgreSQL (idempotent): repairs any gap in the queryable copy."""
    from agents.audit_sink import reload_from_topic  # imports Faust: only for this command

    settings = get_settings()
    try:
        with AuditStore(dsn or settings.pg_dsn("rights")) as store:
            store.ensure_schema()
            result = reload_from_topic(settings.kafka_config(), store, topic)
    except SharingBusError as exc:
        fail(str(exc))
    typer.echo(
        f"audit reload {topic}: {result.stored} new, {result.duplicates} already stored, "
        f"{result.skipped} other kinds, {len(result.dead)} unusable"
    )
    if result.dead:
        raise typer.Exit(1)


audit_app.command("event")(event)
audit_app.command("subject")(subject)
audit_app.command("verify")(verify_command)
audit_app.command("reload")(reload_command)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
