"""Subject access: every sharing of the controller's own events, nothing of others', HTML escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from streams.agreements import load_agreements
from streams.avro.catalogue import load_catalogue
from streams.privacy.identifiers import upn_check_letter
from streams.privacy.keys import KeyRing
from streams.rights.access import build_report, render_html
from streams.rights.links import LinkRow, subject_tokens
from streams.settings import ROOT

NOW = datetime(2026, 4, 2, tzinfo=UTC)
UPN = upn_check_letter("870000000001") + "870000000001"


class _Links:
    def __init__(self, rows: list[LinkRow]) -> None:
        self.rows = rows

    def by_tokens(self, tokens: Sequence[str]) -> list[LinkRow]:
        persons = {r.person_token for r in self.rows if set(r.tokens) & set(tokens)}
        return [r for r in self.rows if r.person_token in persons]


class _Ledger:
    def __init__(self, records: dict[str, list[dict[str, Any]]]) -> None:
        self.records = records

    def by_event(self, event_id: str) -> list[dict[str, Any]]:
        return self.records.get(event_id, [])


class _Store:
    def __init__(self, requests: list[dict[str, Any]]) -> None:
        self.requests = requests

    def requests_about(self, event_ids: Sequence[str], tokens: Sequence[str]) -> list[dict[str, Any]]:
        return self.requests


def _decision(event_id: str, partner: str, recipient: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source_partner": partner,
        "event_type": "education.exclusion",
        "recipient": recipient,
        "outcome": "shared",
        "output_topic": f"shared.{recipient}.education.exclusion",
        "agreement_id": "education-to-reading-yjs",
        "agreement_version": "1.0",
        "released": ["envelope.event_id", "reason"],
        "transformed": ["subject.upn"],
        "withheld": ["subject.given_name"],
        "subject_tokens": ["k1.tok"],
        "at": "2026-03-02T09:00:00.000+00:00",
    } | extra


def _report(
    requests: list[dict[str, Any]] | None = None, *, school_events: bool = True, police_events: bool = True
) -> dict[str, Any]:
    catalogue, keyring = load_catalogue(), KeyRing.generate()
    tokens = subject_tokens({"upn": UPN}, "reading_schools", keyring, keyring.active_id)
    rows = [LinkRow("police1", 0, "p.x", tuple(tokens))] if police_events else []
    links = _Links([*rows, *([LinkRow("e1", 0, "p.x", tuple(tokens))] if school_events else [])])
    school = [
        _decision("e1", "reading_schools", "reading_yjs_team"),
        _decision("e1", "reading_schools", "x", outcome="denied"),
    ]
    police = [_decision("police1", "thames_valley_police", "vru_analysts", event_type="police.stop_search")]
    ledger = _Ledger({"e1": school, "police1": police})
    return build_report(
        "reading_schools",
        {"upn": UPN},
        catalogue=catalogue,
        agreements=load_agreements(ROOT / "agreements", catalogue),
        keyring=keyring,
        linkage_kid=keyring.active_id,
        links=links,  # type: ignore[arg-type]
        ledger=ledger,  # type: ignore[arg-type]
        store=_Store(requests or []),  # type: ignore[arg-type]
        now=NOW,
    )


def test_the_report_lists_the_controllers_sharings_in_full_and_nothing_of_the_others() -> None:
    report = _report()
    (sharing,) = report["sharings"]  # the denied decision is not a sharing
    assert sharing["recipient"]["id"] == "reading_yjs_team" and sharing["status"] == "shared"
    assert sharing["fields"] == {
        "as_is": ["envelope.event_id", "reason"],
        "transformed": {"subject.upn": "pseudonymise"},
        "withheld": ["subject.given_name"],
    }
    assert any("s.16" in basis for basis in sharing["agreement"]["lawful_basis"])
    assert "other_controllers" not in report
    assert "police1" not in str(report) and "stop_search" not in str(report) and UPN not in str(report)
    assert report["searched_by"] == ["upn"]


def test_requests_applied_show_on_each_sharing() -> None:
    request = {
        "request_id": "r1",
        "partner": "reading_schools",
        "kind": "erase",
        "requester": "reading_schools:dpo",
        "reason": "asked",
        "received_at": "2026-04-01",
        "event_ids": ["e1"],
        "actions": [
            {"event_id": "e1", "recipient": "reading_yjs_team", "action": "retract", "outcome": "applied"}
            | {"reason": "erased", "at": "2026-04-01"}
        ],
    }
    report = _report([request])
    assert report["sharings"][0]["status"] == "retracted"
    assert [r["request_id"] for r in report["requests"]] == ["r1"]


def test_html_escapes_everything_and_runs_nothing() -> None:
    report = _report(
        [
            {
                "request_id": "r1",
                "partner": "reading_schools",
                "kind": "erase",
                "requester": "reading_schools:dpo",
                "reason": "<script>alert(1)</script>",
                "received_at": "2026-04-01",
                "event_ids": [],
                "actions": [],
            }
        ]
    )
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Reading Youth Justice Service" in page and "another controller" not in page


def test_what_other_controllers_hold_changes_nothing_in_the_report() -> None:
    """A person only the police hold records about reads, to the school, exactly like a stranger:
    no count, no `found`, no word in the page (with and without the school's own sharings)."""
    for school_events in (False, True):
        with_police = _report(school_events=school_events, police_events=True)
        stranger = _report(school_events=school_events, police_events=False)
        assert with_police == stranger
        assert render_html(with_police) == render_html(stranger)
    assert _report(school_events=False)["found"] is False
