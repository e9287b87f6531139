"""Subject access (UK GDPR Art 15, DPO control 11): everything shared about one person, for the
controller the person asked.

Built from the audit ledger, never from the shared data: the person is found by the linkage tokens
of the identifiers the controller holds (the linker's records in the vault, and the request log,
which still knows events erased since), and each of the controller's events is looked up in the
ledger (`AuditStore.by_event`): who received it, when, under which agreement and lawful basis,
which fields as they were, which transformed (and how), which withheld; then what requests did to
it. Other controllers' events about the same person are skipped without a trace: not described,
not counted, and `found` says only whether this controller shared or was asked anything, so the
report never tells the controller (or the person) whether police or social care hold records.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from streams.agreements import AgreementSet
from streams.agreements.checks import select_for
from streams.agreements.model import LAWFUL_BASES
from streams.avro.catalogue import Catalogue
from streams.enforce.audit_store import AuditStore
from streams.privacy.keys import KeyRing
from streams.rights.context import shared_decisions
from streams.rights.links import LinkIndex, subject_tokens
from streams.rights.store import RightsStore

__all__ = ["build_report", "render_html"]


def _forms(agreements: AgreementSet, catalogue: Catalogue, record: Mapping[str, Any]) -> dict[str, str]:
    """path -> operator for the transformed fields, from the agreement (when still loaded)."""
    agreement = next((a for a in agreements.agreements if a.id == record.get("agreement_id")), None)
    paths = list(record.get("transformed") or ())
    if agreement is None or record.get("event_type") not in agreement.event_types:
        return dict.fromkeys(paths, "transformed")
    _, selection = select_for(agreement, str(record["event_type"]), catalogue)
    return {p: selection.rules[p].operator if p in selection.rules else "transformed" for p in paths}


def _agreement(agreements: AgreementSet, record: Mapping[str, Any]) -> dict[str, Any]:
    agreement = next((a for a in agreements.agreements if a.id == record.get("agreement_id")), None)
    doc: dict[str, Any] = {"id": record.get("agreement_id"), "version": record.get("agreement_version")}
    if agreement is not None:
        codes = [*agreement.lawful_basis, *agreement.special_category_basis]
        doc.update(
            title=agreement.title,
            purpose=agreement.purpose,
            lawful_basis=[LAWFUL_BASES.get(c, c) for c in codes],
            current_version=agreement.version,
            retention_days=agreement.retention_days,
        )
    return doc


def _recipient(agreements: AgreementSet, recipient: str) -> dict[str, Any]:
    r = agreements.recipients.get(recipient)
    if r is None:
        return {"id": recipient}
    return {"id": recipient, "name": r.name, "organisation": r.organisation}


def _applied(requests: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(event, recipient) -> what requests did to that sharing (retract, correct)."""
    done: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for req in requests:
        for action in req["actions"]:
            if action["action"] in ("retract", "correct") and action["outcome"] == "applied":
                done.setdefault((action["event_id"], action["recipient"]), []).append(
                    {"request_id": req["request_id"], "kind": req["kind"], "action": action["action"]}
                    | {"at": str(action["at"])}
                )
    return done


def build_report(
    partner: str,
    identifiers: Mapping[str, Any],
    *,
    catalogue: Catalogue,
    agreements: AgreementSet,
    keyring: KeyRing,
    linkage_kid: str,
    links: LinkIndex,
    ledger: AuditStore,
    store: RightsStore,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report as a JSON-able dict (see `docs/subject-rights.md` for its fields)."""
    tokens = subject_tokens(identifiers, partner, keyring, linkage_kid)
    linked = [r.event_id for r in links.by_tokens(tokens)]
    requests = [r for r in store.requests_about(linked, tokens) if r["partner"] == partner]
    event_ids = list(dict.fromkeys([*linked, *(e for r in requests for e in r["event_ids"])]))
    applied = _applied(requests)
    sharings: list[dict[str, Any]] = []
    for event_id in event_ids:
        records = ledger.by_event(event_id)
        if not records or records[0]["source_partner"] != partner:
            continue
        for rec in shared_decisions(records):
            done = applied.get((event_id, str(rec["recipient"])), [])
            sharings.append(
                {
                    "event_id": event_id,
                    "event_type": rec["event_type"],
                    "shared_at": rec["at"],
                    "recipient": _recipient(agreements, str(rec["recipient"])),
                    "agreement": _agreement(agreements, rec),
                    "fields": {
                        "as_is": list(rec.get("released") or ()),
                        "transformed": _forms(agreements, catalogue, rec),
                        "withheld": list(rec.get("withheld") or ()),
                    },
                    "recipient_tokens": list(rec.get("subject_tokens") or ()),
                    "status": _status(done),
                    "requests": done,
                }
            )
    sharings.sort(key=lambda s: (s["shared_at"], s["event_id"], s["recipient"]["id"]))
    return {
        "report": "subject access",
        "controller": {"id": partner, "name": catalogue.partner(partner).name},
        "generated_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "searched_by": sorted(k for k, v in identifiers.items() if v not in (None, "")),
        "found": bool(sharings) or bool(requests),
        "sharings": sharings,
        "requests": [_request(r) for r in requests],
    }


def _status(done: Sequence[Mapping[str, Any]]) -> str:
    if not done:
        return "shared"
    return {"retract": "retracted", "correct": "corrected"}[str(done[-1]["action"])]


def _request(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "request_id": r["request_id"],
        "kind": r["kind"],
        "received_at": str(r["received_at"]),
        "requester": r["requester"],
        "reason": r["reason"],
        "events": len(r["event_ids"]),
        "actions": [
            {k: str(a[k]) for k in ("event_id", "recipient", "action", "outcome", "reason", "at")}
            for a in r["actions"]
        ],
    }


# --- HTML ------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained page (no scripts, every value escaped) to send to the data subject."""
    controller = report["controller"]
    sharing_rows = []
    for s in report["sharings"]:
        agreement = s["agreement"]
        forms = ", ".join(f"{p} ({op})" for p, op in s["fields"]["transformed"].items())
        sharing_rows.append(
            [
                _e(s["shared_at"]),
                _e(s["event_type"]),
                _e(s["recipient"].get("name", s["recipient"]["id"]))
                + (
                    f"<br><small>{_e(s['recipient']['organisation'])}</small>"
                    if "organisation" in s["recipient"]
                    else ""
                ),
                _e(f"{agreement.get('title', agreement['id'])} (v{agreement['version']})"),
                "<br>".join(_e(b) for b in agreement.get("lawful_basis", [])),
                _e(", ".join(s["fields"]["as_is"])),
                _e(forms),
                _e(s["status"]),
            ]
        )
    request_rows = [
        [_e(r["received_at"]), _e(r["kind"]), _e(r["reason"]), _e(len(r["actions"]))]
        for r in report["requests"]
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Subject access report: {_e(controller['name'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #999;padding:.3em .5em;vertical-align:top;text-align:left}</style>"
        "</head><body>"
        f"<h1>Subject access report</h1><p>Controller: {_e(controller['name'])}. "
        f"Generated {_e(report['generated_at'])}, searched by {_e(', '.join(report['searched_by']))}.</p>"
        f"<h2>What was shared ({len(report['sharings'])})</h2>"
        + _table(
            (
                "When",
                "What",
                "Recipient",
                "Agreement",
                "Lawful basis",
                "Fields as recorded",
                "Fields transformed",
                "Status",
            ),
            sharing_rows,
        )
        + f"<h2>Requests applied ({len(report['requests'])})</h2>"
        + _table(("Received", "Kind", "Reason", "Actions"), request_rows)
        + "<p>This report covers this controller only: other organisations answer for what they hold.</p>"
        "</body></html>"
    )
