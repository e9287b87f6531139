"""`sharebus agreements check | explain`: validate agreements; show what a recipient would receive."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sharebus.common import fail
from streams.agreements import check_agreements, compile_plans, explain, load_agreements
from streams.agreements.explain import Explanation, coerce_event, jsonable
from streams.avro import paths
from streams.avro.catalogue import load_catalogue
from streams.errors import SharingBusError
from streams.privacy.areas import AreaLookup
from streams.privacy.key_sources import load_keyring
from streams.privacy.keys import KeyRing
from streams.settings import Settings, get_settings

agreements_app = typer.Typer(
    help="Sharing agreements: check them, or explain what a recipient would receive.", no_args_is_help=True
)


def _display(path: Path) -> Path:
    """`path` relative to the working directory when inside it, so messages name `agreements/x.yaml`."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


@agreements_app.command("check")
def check(
    directory: Path | None = typer.Argument(
        None, help="Agreements directory (default: SHARINGBUS_AGREEMENTS_DIR)"
    ),
    schemas: Path | None = typer.Option(
        None, "--schemas", help="Schemas directory (default: SHARINGBUS_SCHEMAS_DIR)"
    ),
    today: str | None = typer.Option(None, "--today", help="Judge review dates as of this day (YYYY-MM-DD)"),
) -> None:
    """Validate every agreement: one line per problem naming the file and key; exit 1 on any error."""
    settings = get_settings()
    directory = directory if directory is not None else _display(settings.agreements_dir)
    try:
        as_of = date.fromisoformat(today) if today else None
    except ValueError:
        fail(f"--today {today!r} is not a date (YYYY-MM-DD)")
    try:
        catalogue = load_catalogue(schemas or settings.schemas_dir)
        agreements, issues = check_agreements(directory, catalogue, today=as_of)
    except SharingBusError as exc:
        fail(str(exc))
    for issue in issues:
        typer.echo(str(issue))
    errors = sum(1 for i in issues if i.severity == "error")
    if errors:
        typer.echo(f"{errors} error(s) in {directory}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"ok: {len(agreements.agreements)} agreement(s), {len(agreements.recipients)} recipient(s) "
        f"in {directory} (version {agreements.version})"
    )


@agreements_app.command("explain")
def explain_cmd(
    event_file: Path = typer.Argument(..., help="One decoded event as JSON (dates and times as ISO strings)"),
    recipient: str = typer.Option(..., "--recipient", "-r", help="Recipient id (agreements/recipients.yaml)"),
    partner: str | None = typer.Option(
        None, "--partner", "-p", help="Explain as if this partner published it (default: the envelope's)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON"),
    directory: Path | None = typer.Option(None, "--dir", help="Agreements directory"),
    areas: Path | None = typer.Option(None, "--areas", help="Area lookup CSV (for area_lookup treatments)"),
) -> None:
    """Show exactly what RECIPIENT would receive for EVENT_FILE, and why; publishes nothing."""
    settings = get_settings()
    try:
        raw = json.loads(event_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{event_file}: cannot read JSON ({exc})")
    if not isinstance(raw, dict):
        fail(f"{event_file}: expected one event (a JSON object)")
    try:
        catalogue = load_catalogue(settings.schemas_dir)
        keyring, note = _keyring(settings)
        area_lookup = AreaLookup.load(areas) if areas else None
        agreements = load_agreements(directory or settings.agreements_dir, catalogue)
        planset = compile_plans(agreements, catalogue, keyring, area_lookup)
        event = coerce_event(catalogue, raw)
        explanation = explain(planset, recipient, event, partner)
    except SharingBusError as exc:
        fail(str(exc))
    if note:
        typer.echo(f"note: {note}", err=True)
    if as_json:
        typer.echo(json.dumps(explanation.to_dict(), indent=2, sort_keys=False))
    else:
        _print(explanation)


def _keyring(settings: Settings) -> tuple[KeyRing, str | None]:
    """The real key ring (so tokens match what the recipient gets), else a throwaway one, said so."""
    path = settings.keyring_path
    if settings.keys is None and not settings.key_provider and not path.exists():
        return KeyRing.generate(), f"no key ring at {path}: tokens shown use a temporary key"
    return load_keyring(settings), None


def _print(explanation: Explanation) -> None:
    console = Console(highlight=False)
    e = explanation
    console.print(
        f"[bold]{e.recipient}[/] · {e.event_type} from {e.partner}: [bold]{e.outcome.upper()}[/] ({e.reason})"
    )
    for plan in e.plans:
        console.rule(f"{plan.agreement_id} v{plan.agreement_version} (plan {plan.plan_version})")
        console.print(f"topic: {plan.output_topic}")
        console.print(f"purpose: {plan.purpose}")
        for basis in plan.lawful_basis:
            console.print(f"lawful basis: {basis['code']} — {basis['label']}")
        for condition in plan.conditions:
            console.print(f"condition: {condition}")
        console.print(f"outcome: [bold]{plan.outcome}[/] ({plan.reason})")
        table = Table("field", "outcome", "rule", "value")
        for f in plan.fields:
            value = _values_at(plan.output, f.path) if f.outcome != "withheld" else ""
            style = {"withheld": "dim", "transformed": "yellow"}.get(f.outcome, "")
            table.add_row(f.path, f.outcome, f.rule, value, style=style)
        console.print(table)
        if plan.output is not None:
            console.print_json(json.dumps(explanation.to_dict()["plans"][e.plans.index(plan)]["output"]))


def _values_at(output: Any, path: str) -> str:
    """The released value(s) at `path` as text (arrays give one value per element)."""
    shown = [json.dumps(jsonable(v)) for v in paths.values(output, path)]
    return ", ".join(shown)


def register(app: typer.Typer) -> None:
    app.add_typer(agreements_app, name="agreements")
