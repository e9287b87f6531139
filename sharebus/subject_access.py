"""`sharebus subject-access`: everything a controller shared about one person (UK GDPR Art 15).

Answers from the audit ledger's PostgreSQL copy and the linker's records in the vault (see
`streams.rights.access`); JSON for systems, HTML to send to the person. Only to an officer of that
controller: the caller is the verified token in `SHARINGBUS_IDENTITY_TOKEN`, and the rights roles
file (`SHARINGBUS_RIGHTS_ROLES_PATH`) must list its subject among the partner's officers. Every
answer and every refusal is audited (`subject_access_audit`, streams.rights.access_audit) before the
caller sees it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from sharebus.common import fail
from sharebus.officers import Refusal, refuse, verified_officer
from streams.agreements import load_agreements
from streams.avro.catalogue import load_catalogue
from streams.enforce.audit_store import AuditStore
from streams.errors import SharingBusError
from streams.privacy.key_sources import load_keyring
from streams.rights import linkage_key_id
from streams.rights.access import build_report, render_html
from streams.rights.access_audit import AccessAudit
from streams.rights.links import LinkIndex
from streams.rights.model import IDENTIFIER_KINDS, parse_assignments
from streams.rights.store import RightsStore
from streams.settings import get_settings


def subject_access(
    partner: str | None = typer.Option(
        None, "--partner", help="The controller the person asked (default: the caller's)"
    ),
    identifier: list[str] = typer.Option(
        ...,
        "--identifier",
        help=f"KIND=VALUE as the controller holds it; KIND in {', '.join(IDENTIFIER_KINDS)}",
    ),
    fmt: str = typer.Option("json", "--format", help="json | html"),
    out: Path | None = typer.Option(None, "--out", help="Write the report here (default: standard output)"),
) -> None:
    """Every sharing of the person's data by PARTNER: recipients, when, agreement and lawful basis,
    fields and their form, requests applied; nothing about other controllers. Officers only."""
    if fmt not in ("json", "html"):
        fail("--format must be json or html")
    settings = get_settings()
    audit = AccessAudit(settings.pg_dsn("rights"))
    kinds = [item.partition("=")[0].strip() for item in identifier]
    try:
        catalogue = load_catalogue(settings.schemas_dir)
        caller, partner = verified_officer(settings, partner, list(catalogue.partners))
    except Refusal as exc:
        audit.record("refused", requester=exc.caller, partner=partner, searched_by=kinds, reason=str(exc))
        refuse("subject access", exc)
    except SharingBusError as exc:
        fail(str(exc))
    try:
        identifiers = parse_assignments(identifier, "--identifier")
        unknown = sorted(set(identifiers) - set(IDENTIFIER_KINDS))
        if unknown:
            fail(f"unknown identifier kind {unknown[0]!r} (known: {', '.join(IDENTIFIER_KINDS)})")
        catalogue.partner(partner)
        keyring = load_keyring(settings)
        with AuditStore(settings.pg_dsn("rights")) as ledger:
            store = RightsStore(settings.pg_dsn("rights"))
            report: dict[str, Any] = build_report(
                partner,
                identifiers,
                catalogue=catalogue,
                agreements=load_agreements(settings.agreements_dir, catalogue),
                keyring=keyring,
                linkage_kid=linkage_key_id(settings, keyring),
                links=LinkIndex(settings.pg_dsn("rights")),
                ledger=ledger,
                store=store,
            )
            store.close()
        audit.record(
            "answered",
            requester=caller.subject,
            partner=partner,
            searched_by=identifiers,
            reason=f"answered to an officer of {partner}",
            sharings=len(report["sharings"]),
        )
    except SharingBusError as exc:
        fail(str(exc))
    text = render_html(report) if fmt == "html" else json.dumps(report, indent=2, default=str)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"subject access report: {out} ({len(report['sharings'])} sharings)", err=True)


def register(app: typer.Typer) -> None:
    app.command("subject-access")(subject_access)
