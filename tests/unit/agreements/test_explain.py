"""explain: the output a recipient would get for one event and, per field, the rule behind it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from streams.agreements import PlanSet, explain
from streams.agreements.explain import coerce_event
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError, ValidationError

from .conftest import EXAMPLES, NHS

MakeEvent = Callable[..., dict[str, Any]]


def test_explains_each_field_and_the_agreement(planset: PlanSet, make_event: MakeEvent) -> None:
    event = make_event("police.crime_recorded")
    e = explain(planset, "vru_analysts", event)
    assert (e.outcome, e.partner, len(e.plans)) == ("shared", "thames_valley_police", 1)
    plan = e.plans[0]
    assert plan.agreement_id == "police-to-vru-analysts" and plan.agreement_version == "1.0"
    assert {
        "code": "pcsc_2022_s16",
        "label": "Police, Crime, Sentencing and Courts Act 2022 s.16 (Serious Violence Duty disclosure)",
    } in plan.lawful_basis
    assert plan.purpose.startswith("Understand the kinds and causes")
    (real,) = planset.plans_for("police.crime_recorded", "thames_valley_police")
    assert plan.output == real.apply(event).output
    rules = {f.path: (f.outcome, f.rule) for f in plan.fields}
    assert rules["subject.nhs_number"] == (
        "transformed",
        "pseudonymised as nhs_number in domain recipient:vru_analysts by rule subject.nhs_number",
    )
    assert rules["subject.given_name"] == ("withheld", "dropped by tag pii:direct")
    assert rules["location.description"] == ("withheld", "dropped by tag pii:free_text")
    assert rules["crime_reference"] == ("withheld", "dropped: not in agreement")
    assert rules["subject.date_of_birth"][1].startswith("generalised to age band (10, 14, 18, 25, 35)")
    assert rules["envelope.source_partner"] == ("released", "kept: the envelope is always released")
    assert rules["crime_category"] == ("released", "kept by rule crime_category")


def test_explains_a_withheld_identifier_and_a_denial(planset: PlanSet, make_event: MakeEvent) -> None:
    e = explain(planset, "vru_analysts", make_event("police.crime_recorded", {"subject.nhs_number": "123"}))
    fields = {f.path: f for f in e.plans[0].fields}
    assert fields["subject.nhs_number"].outcome == "withheld"
    assert fields["subject.nhs_number"].rule.startswith("withheld: invalid identifier")
    denied = explain(
        planset,
        "vru_analysts",
        make_event(
            "police.crime_recorded",
            {"crime_category": "BURGLARY", "knife_or_sharp_instrument": False, "firearm": False},
        ),
    )
    assert denied.outcome == "denied" and denied.plans[0].output is None
    assert denied.reason.startswith("row condition failed: any of (crime_category in")


def test_default_deny_is_explained(planset: PlanSet, make_event: MakeEvent) -> None:
    e = explain(planset, "reading_csp", make_event("police.crime_recorded"))
    assert (e.outcome, e.plans) == ("denied", [])
    assert "default deny" in e.reason
    with pytest.raises(ConfigurationError, match="unknown recipient"):
        explain(planset, "nobody", make_event("police.crime_recorded"))


def test_coerce_event_from_json(catalogue: Catalogue) -> None:
    raw = {
        "envelope": {
            "event_id": "0b9a6f8e-3c1c-4a1e-9f3e-2a7c5b1d9e01",
            "event_type": "police.stop_search",
            "source_partner": "thames_valley_police",
            "occurred_at": "2026-03-01T10:00:00Z",
            "recorded_at": "2026-03-01T11:00:00",
            "schema_version": 1,
        },
        "subject": {"date_of_birth": "2009-01-31"},
        "legislation": "PACE_S1",
        "object_of_search": "OFFENSIVE_WEAPONS",
        "outcome": "ARREST",
        "weapon_found": True,
        "age_range": "AGE_10_17",
        "gender": "MALE",
    }
    event = coerce_event(catalogue, raw)
    assert event["envelope"]["occurred_at"] == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert event["envelope"]["recorded_at"].tzinfo is UTC
    assert event["subject"]["date_of_birth"] == date(2009, 1, 31)
    assert event["subject"]["gender"] == "UNKNOWN" and event["location"] is None  # defaults
    with pytest.raises(ValidationError, match="does not match its schema"):
        coerce_event(catalogue, {**raw, "outcome": "SHOT"})
    with pytest.raises(ValidationError, match=r"subject\.date_of_birth"):
        coerce_event(catalogue, {**raw, "subject": {"date_of_birth": "31/01/2009"}})


def test_cli_explain_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sharebus.agreements import register

    event = {
        "envelope": {
            "event_id": "0b9a6f8e-3c1c-4a1e-9f3e-2a7c5b1d9e01",
            "event_type": "police.crime_recorded",
            "source_partner": "thames_valley_police",
            "occurred_at": "2026-03-01T10:00:00Z",
            "recorded_at": "2026-03-01T11:00:00Z",
            "schema_version": 1,
        },
        "subject": {"nhs_number": NHS, "given_name": "Jordan", "date_of_birth": "2010-05-17"},
        "crime_reference": "43/1/26",
        "offence_code": "8/1",
        "crime_category": "ROBBERY",
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    monkeypatch.setenv("SHARINGBUS_KEYRING_PATH", str(tmp_path / "keyring.json"))
    monkeypatch.setenv("SHARINGBUS_AGREEMENTS_DIR", str(EXAMPLES))
    monkeypatch.delenv("SHARINGBUS_KEYS", raising=False)
    from streams.settings import get_settings

    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    try:
        result = CliRunner().invoke(
            app, ["agreements", "explain", "--recipient", "vru_analysts", str(path), "--json"]
        )
        table = CliRunner().invoke(
            app, ["agreements", "explain", "-r", "vru_analysts", str(path)], env={"COLUMNS": "250"}
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    out = doc["plans"][0]["output"]
    assert doc["outcome"] == "shared" and out["subject"]["date_of_birth"] == "14-17"
    assert out["envelope"]["occurred_at"] == "2026-03-01"  # the day: vru_analysts is individual tier
    assert "given_name" not in out["subject"] and "Jordan" not in result.stdout and NHS not in result.stdout
    assert not (tmp_path / "keyring.json").exists()  # explain creates nothing
    assert table.exit_code == 0 and "dropped by tag pii:direct" in table.stdout


def test_explain_as_another_partner(planset: PlanSet, make_event: MakeEvent) -> None:
    event = make_event("health.ed_assault_attendance", {"envelope.source_partner": "john_radcliffe_ed"})
    assert explain(planset, "reading_csp", event).outcome == "denied"  # no agreement with Oxford's ED
    e = explain(planset, "reading_csp", event, partner="royal_berkshire_ed")
    assert e.outcome == "shared" and e.plans[0].output is not None
    assert e.plans[0].output["envelope"]["source_partner"] == "royal_berkshire_ed"
    assert e.plans[0].output["assault_at"] == "2026-02"
    assert e.plans[0].output["location"] == {"postcode": "RG1", "lsoa_code": "E01016001"}
