"""The simulator: reproducible, valid events with coherent risk, and a truth file that explains them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sharebus.main import app
from streams.avro.catalogue import load_catalogue
from streams.privacy.areas import AreaLookup
from streams.privacy.identifiers import InvalidIdentifier, normalise_nhs, normalise_pnc, normalise_upn
from streams.publish.extracts import ExtractReader
from streams.publish.publisher import prepare_event
from streams.publish.simulate import AREAS_CSV, Simulation, write_extracts
from streams.settings import ROOT

NOW = datetime(2025, 6, 1, tzinfo=UTC)
CATALOGUE = load_catalogue(ROOT / "schemas")
CHECKS = {"nhs_number": normalise_nhs, "upn": normalise_upn, "pnc_id": normalise_pnc}


def _subjects(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if event.get("subject"):
        yield event["subject"]
    for person in event.get("people", []):
        yield person["subject"]


@pytest.fixture(scope="module")
def run() -> tuple[Simulation, list[tuple[str, str, dict[str, Any]]]]:
    sim = Simulation(11, 1500, now=NOW, invalid_rate=0.05)
    return sim, list(sim.events(4000))


def test_same_seed_same_people_and_events() -> None:
    a, b = Simulation(5, 300, now=NOW), Simulation(5, 300, now=NOW)
    events_a, events_b = list(a.events(200)), list(b.events(200))
    assert json.dumps(events_a, default=str) == json.dumps(events_b, default=str)
    assert a.truth() == b.truth()
    other = list(Simulation(6, 300, now=NOW).events(200))
    assert [e[2]["envelope"]["event_id"] for e in other] != [e[2]["envelope"]["event_id"] for e in events_a]


def test_every_event_type_appears_and_every_event_is_valid(
    run: tuple[Simulation, list[tuple[str, str, dict[str, Any]]]],
) -> None:
    _, events = run
    simulated = {et for et, t in CATALOGUE.event_types.items() if t.sector != "bus"}  # not requests
    assert {et for _, et, _ in events} == simulated
    for partner, event_type, event in events:
        assert event_type in CATALOGUE.partner(partner).event_types
        prepare_event(CATALOGUE, partner, event_type, event)  # raises on any invalid field


def test_identifiers_are_valid_except_the_deliberate_invalid_ones(
    run: tuple[Simulation, list[tuple[str, str, dict[str, Any]]]],
) -> None:
    sim, events = run
    deliberate = {
        (v["field"], v["value"])
        for row in sim.truth()
        for v in row["variants"]
        if v["kind"] == "invalid_check_digit"
    }
    invalid, valid = set(), Counter[str]()
    for _, _, event in events:
        for subject in _subjects(event):
            for kind, check in CHECKS.items():
                if subject.get(kind) is None:
                    continue
                try:
                    check(subject[kind])
                    valid[kind] += 1
                except InvalidIdentifier:
                    invalid.add((kind, subject[kind]))
    assert invalid, "expected some deliberately invalid identifiers"
    assert invalid <= deliberate
    assert min(valid.values()) > 50 and len(valid) == 3
    for row in sim.truth():
        normalise_nhs(row["nhs_number"])
        assert row["nhs_number"].startswith("999")  # NHS England's test range, never a real patient
        if row["upn"]:
            normalise_upn(row["upn"])
        if row["pnc_id"]:
            normalise_pnc(row["pnc_id"])


def test_truth_has_identity_variants_and_event_ids(
    run: tuple[Simulation, list[tuple[str, str, dict[str, Any]]]],
) -> None:
    sim, events = run
    truth = sim.truth()
    assert len(truth) == 1500
    keys = {
        "person_id",
        "nhs_number",
        "upn",
        "pnc_id",
        "given_name",
        "family_name",
        "date_of_birth",
        "postcode",
    }
    assert keys | {"variants", "event_ids"} <= set(truth[0])
    date.fromisoformat(truth[0]["date_of_birth"])
    ages = [(NOW.date() - date.fromisoformat(r["date_of_birth"])).days // 365 for r in truth]
    assert sum(10 <= a <= 30 for a in ages) / len(ages) > 0.7
    kinds = Counter(v["kind"] for r in truth for v in r["variants"])
    assert {"typo", "format", "format_in_extracts", "invalid_check_digit"} <= set(kinds)
    spaced = [
        v["value"]
        for r in truth
        for v in r["variants"]
        if v["field"] == "nhs_number" and v["kind"] == "format"
    ]
    assert spaced and all(len(s) == 12 and s.count(" ") == 2 for s in spaced)
    by_id = {e["envelope"]["event_id"]: (et, e) for _, et, e in events}
    named = {eid for r in truth for eid in r["event_ids"]}
    anonymous = {eid for r in truth for eid in r["anonymous_event_ids"]}
    assert named | anonymous == set(by_id)
    assert all(by_id[eid][0] == "health.ed_assault_attendance" for eid in anonymous)
    assert all("subject" not in by_id[eid][1] for eid in anonymous)


def test_risk_is_coherent_across_partners(
    run: tuple[Simulation, list[tuple[str, str, dict[str, Any]]]],
) -> None:
    sim, events = run
    types = {e["envelope"]["event_id"]: et for _, et, e in events}

    def rate(rows: list[dict[str, Any]], event_type: str) -> float:
        return sum(types[eid] == event_type for r in rows for eid in r["event_ids"]) / max(1, len(rows))

    truth = sim.truth()
    gang = [r for r in truth if {"GANGS", "CHILD_CRIMINAL_EXPLOITATION"} & set(r["factors"])]
    low = [r for r in truth if r["risk_tier"] == "low"]
    assert gang and low
    for event_type in ("police.crime_recorded", "police.stop_search", "education.exclusion"):
        assert rate(gang, event_type) > 3 * rate(low, event_type), event_type


def test_locations_use_the_area_lookup(run: tuple[Simulation, list[tuple[str, str, dict[str, Any]]]]) -> None:
    _, events = run
    lookup = AreaLookup.load(AREAS_CSV)
    located = [e["location"] for _, _, e in events if e.get("location")]
    assert len(located) > 1000
    for loc in located:
        assert lookup.lsoa_for_postcode(loc["postcode"]) == loc["lsoa_code"]
    districts = {loc["postcode"].split()[0] for loc in located}
    assert {"RG1", "SL1", "OX4", "MK9", "HP13"} <= districts


def test_extracts_publishable_and_tied_to_the_truth(tmp_path: Path) -> None:
    sim = Simulation(3, 400, now=NOW)
    paths = write_extracts(sim, tmp_path, events=600)
    assert {p.suffix for p in paths} == {".csv", ".jsonl"}
    ids = set()
    formats = set()
    for path in paths:
        partner, rest = path.name.split(".", 1)
        event_type = rest.rsplit(".", 1)[0]
        for row in ExtractReader(path, CATALOGUE.event_type(event_type)):
            assert row.event is not None
            dob = (row.event.get("subject") or {}).get("date_of_birth")
            if dob:
                formats.add("iso" if dob[4:5] == "-" else "other")
            ids.add(prepare_event(CATALOGUE, partner, event_type, row.event)["envelope"]["event_id"])
    truth_ids = {eid for r in sim.truth() for eid in r["event_ids"] + r["anonymous_event_ids"]}
    assert len(ids) == 600 and ids == truth_ids
    assert formats == {"iso", "other"}


def test_cli_writes_extracts_and_truth_without_a_broker(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    args = [
        "simulate",
        "--extracts",
        str(tmp_path / "out"),
        "--events",
        "150",
        "--people",
        "120",
        "--seed",
        "4",
    ]
    result = CliRunner().invoke(app, [*args, "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "out").iterdir())
    assert written and all(f"wrote {p}" in result.output for p in written)
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    assert len(rows) == 120 and sum(len(r["event_ids"]) + len(r["anonymous_event_ids"]) for r in rows) >= 150
