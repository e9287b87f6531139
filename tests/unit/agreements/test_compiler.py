"""Compiled plans: deny by default, selectors and precedence, invalid identifiers, fail closed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.agreements import Plan, PlanSet, compile_plans, load_agreements
from streams.agreements.tree import event_tree, leaves
from streams.avro.catalogue import Catalogue
from streams.privacy.identifiers import normalise_nhs, normalise_pnc
from streams.privacy.keys import KeyRing, pseudonym

from .conftest import NHS, PNC, TODAY, base_agreement, fields_of

Event = dict[str, Any]
MakeEvent = Callable[..., Event]


@pytest.fixture
def compile_one(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> Callable[..., Plan]:
    """The single plan of one agreement document (for police.crime_recorded unless told)."""

    def make(doc: dict[str, Any], event_type: str = "police.crime_recorded") -> Plan:
        d = agreement_dir({"test.yaml": doc})
        planset = compile_plans(load_agreements(d, catalogue, today=TODAY), catalogue, keyring)
        (plan,) = planset.plans_for(event_type)
        return plan

    return make


def test_fields_not_mentioned_are_absent(compile_one: Callable[..., Plan], make_event: MakeEvent) -> None:
    plan = compile_one(base_agreement())
    out = plan.apply(make_event("police.crime_recorded")).output
    assert out is not None
    assert set(out) == {"envelope", "subject", "crime_category"}
    assert set(out["subject"]) == {"nhs_number", "date_of_birth"}
    assert set(out["envelope"]) == {
        "event_id",
        "event_type",
        "source_partner",
        "occurred_at",
        "recorded_at",
        "schema_version",
    }
    assert "crime_reference" not in out and "people" not in out and "location" not in out


def test_event_type_without_agreement_has_no_plan(planset: PlanSet) -> None:
    assert planset.plans_for("housing.homelessness_case") == ()
    assert planset.plans_for("housing.homelessness_case", "reading_housing") == ()


def test_plans_are_selected_by_source_partner(planset: PlanSet) -> None:
    assert [p.recipient for p in planset.plans_for("health.ed_assault_attendance", "royal_berkshire_ed")] == [
        "reading_csp"
    ]
    assert planset.plans_for("health.ed_assault_attendance", "john_radcliffe_ed") == ()
    assert len(planset.plans_for("health.ed_assault_attendance")) == 1


def test_denied_when_source_partner_is_not_an_owner(
    compile_one: Callable[..., Plan], make_event: MakeEvent
) -> None:
    decision = compile_one(base_agreement()).apply(
        make_event("police.crime_recorded", {"envelope.source_partner": "x"})
    )
    assert (decision.outcome, decision.output) == ("denied", None)
    assert "not an owner" in decision.reason


def test_tags_select_fields_and_precedence(compile_one: Callable[..., Plan], make_event: MakeEvent) -> None:
    doc = base_agreement()
    fields_of(doc).clear()
    fields_of(doc).update(
        {
            "location": "keep",  # parent
            "tag:pii:quasi": "drop",  # tag beats parent: postcode, latitude, longitude
            "location.latitude": {"round": {"decimals": 2}},  # exact beats tag
            "tag:pii:free_text": {"redact": {}},
        }
    )
    plan = compile_one(doc)
    out = plan.apply(make_event("police.crime_recorded")).output
    assert out is not None
    assert out["location"] == {"lsoa_code": "E01016001", "latitude": 51.45, "description": "[REDACTED]"}
    assert {p: r.via for p, r in plan.fields.items() if p.startswith("location.")} == {
        "location.postcode": "tag",
        "location.lsoa_code": "parent",
        "location.latitude": "exact",
        "location.longitude": "tag",
        "location.description": "tag",
    }


def test_arrays_of_records(compile_one: Callable[..., Plan], make_event: MakeEvent, keyring: KeyRing) -> None:
    doc = base_agreement(special_category_basis=["dpa_2018_sch1_para10"])
    fields_of(doc).update(
        {"people[].role": "keep", "people[].subject.pnc_id": {"pseudonymise": {"identifier": "pnc_id"}}}
    )
    plan = compile_one(doc)
    event = make_event("police.crime_recorded")
    event["people"] = [event["people"][0], {**event["people"][0], "role": "SUSPECT"}]
    out = plan.apply(event).output
    token = pseudonym(keyring, "recipient:vru_analysts", "pnc_id", normalise_pnc(PNC))
    assert out is not None
    assert out["people"] == [{"role": r, "subject": {"pnc_id": token}} for r in ("VICTIM", "SUSPECT")]


def test_tokens_are_keyed_in_the_agreement_domain(
    planset: PlanSet, make_event: MakeEvent, keyring: KeyRing
) -> None:
    (vru,) = planset.plans_for("police.crime_recorded", "thames_valley_police")
    out = vru.apply(make_event("police.crime_recorded")).output
    assert out is not None
    assert out["subject"]["nhs_number"] == pseudonym(
        keyring, "recipient:vru_analysts", "nhs_number", normalise_nhs(NHS)
    )
    assert NHS not in str(out) and PNC not in str(out)
    (iom,) = planset.plans_for("probation.supervision_event")
    event = make_event("probation.supervision_event", {"rosh_level": "HIGH"})
    out = iom.apply(event).output
    assert out is not None
    assert out["subject"]["pnc_id"] == pseudonym(keyring, "purpose:policing", "pnc_id", normalise_pnc(PNC))
    assert iom.pseudonym_paths == ("subject.pnc_id",)


def test_decision_field_lists_are_disjoint_and_complete(
    compile_one: Callable[..., Plan], make_event: MakeEvent, catalogue: Catalogue
) -> None:
    d = compile_one(base_agreement()).apply(make_event("police.crime_recorded"))
    released, transformed, withheld = set(d.released), set(d.transformed), set(d.withheld)
    envelope_times = {"envelope.occurred_at", "envelope.recorded_at"}
    assert transformed == {"subject.nhs_number", "subject.date_of_birth", *envelope_times}
    assert "crime_category" in released and "envelope.event_id" in released
    assert "subject.given_name" in withheld and "people[].subject.nhs_number" in withheld
    assert not (released & transformed or released & withheld or transformed & withheld)
    all_leaves = {n.path for n in leaves(event_tree(catalogue.event_type("police.crime_recorded")))}
    assert released | transformed | withheld == all_leaves


@pytest.mark.parametrize(
    ("where", "overrides", "reason"),
    [
        (
            [{"field": "crime_category", "in": ["ROBBERY"]}],
            {},
            "row condition failed: crime_category in [ROBBERY]",
        ),
        ([{"field": "crime_category", "not_in": ["VIOLENCE_AND_SEXUAL_OFFENCES"]}], {}, "not in"),
        ([{"field": "firearm", "equals": True}], {"firearm": False}, "firearm equals true"),
        ([{"field": "subject.date_of_birth", "age_under": 15}], {}, "age under 15"),  # 15 on 2026-03-01
        ([{"field": "subject.date_of_birth", "age_under": 25}], {"subject": None}, "age under 25"),
        ([{"field": "people[].role", "in": ["SUSPECT"]}], {}, "people[].role in [SUSPECT]"),
        (
            [
                {
                    "any_of": [
                        {"field": "firearm", "equals": True},
                        {"field": "crime_category", "in": ["ROBBERY"]},
                    ]
                }
            ],
            {"firearm": False},
            "any of (firearm equals true; crime_category in [ROBBERY])",
        ),
        (
            [
                {"field": "knife_or_sharp_instrument", "equals": True},
                {"field": "domestic_abuse", "equals": False},
            ],
            {},
            "domestic_abuse equals false",
        ),
    ],
)
def test_row_conditions_deny_with_reason(
    compile_one: Callable[..., Plan],
    make_event: MakeEvent,
    where: list[Any],
    overrides: dict[str, Any],
    reason: str,
) -> None:
    doc = base_agreement()
    doc["event_types"]["police.crime_recorded"]["where"] = where
    d = compile_one(doc).apply(make_event("police.crime_recorded", overrides))
    assert (d.outcome, d.output, d.released) == ("denied", None, [])
    assert reason in d.reason


@pytest.mark.parametrize(
    ("where", "overrides"),
    [
        ([{"field": "crime_category", "in": ["VIOLENCE_AND_SEXUAL_OFFENCES", "ROBBERY"]}], {}),
        ([{"field": "outcome", "not_in": ["CAUTION"]}], {"outcome": None}),
        ([{"field": "subject.date_of_birth", "age_under": 16}], {}),
        ([{"field": "people[].role", "not_in": ["WITNESS"]}], {}),
        (
            [
                {
                    "any_of": [
                        {"field": "firearm", "equals": True},
                        {"field": "crime_category", "in": ["ROBBERY"]},
                    ]
                }
            ],
            {},
        ),
    ],
)
def test_row_conditions_pass(
    compile_one: Callable[..., Plan], make_event: MakeEvent, where: list[Any], overrides: dict[str, Any]
) -> None:
    doc = base_agreement()
    doc["event_types"]["police.crime_recorded"]["where"] = where
    assert compile_one(doc).apply(make_event("police.crime_recorded", overrides)).outcome == "shared"


def test_invalid_identifier_is_withheld(compile_one: Callable[..., Plan], make_event: MakeEvent) -> None:
    plan = compile_one(base_agreement())
    d = plan.apply(
        make_event("police.crime_recorded", {"subject.nhs_number": "9434765918"})
    )  # bad check digit
    assert d.outcome == "shared" and d.output is not None
    assert d.output["subject"]["nhs_number"] is None
    assert d.invalid_identifiers == ["nhs_number"]
    assert "subject.nhs_number" in d.withheld and "subject.nhs_number" not in d.transformed
    fastavro.validation.validate(d.output, fastavro.parse_schema(plan.output_schema), raise_errors=True)


def test_invalid_identifier_denies_the_event(compile_one: Callable[..., Plan], make_event: MakeEvent) -> None:
    plan = compile_one(base_agreement(on_invalid_identifier="deny_event"))
    d = plan.apply(make_event("police.crime_recorded", {"subject.nhs_number": "12345"}))
    assert (d.outcome, d.output, d.invalid_identifiers) == ("denied", None, ["nhs_number"])
    assert d.reason == "invalid identifier nhs_number (subject.nhs_number)"


def test_exception_inside_apply_is_an_error_decision(
    compile_one: Callable[..., Plan], make_event: MakeEvent
) -> None:
    doc = base_agreement()
    fields_of(doc)["location.latitude"] = {"round": {"decimals": 2}}
    plan = compile_one(doc)
    event = make_event("police.crime_recorded")
    event["location"]["latitude"] = "north"  # not a number: the transform raises TypeError
    d = plan.apply(event)
    assert (d.outcome, d.output) == ("error", None)
    assert d.reason == "location.latitude: TypeError"
    del event["location"]
    d = plan.apply(event)
    assert (d.outcome, d.reason) == ("error", "plan failed: KeyError 'location'")
    assert plan.apply({}).outcome == "error"


def test_versions_change_with_the_agreement(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> None:
    def versions(doc: dict[str, Any]) -> tuple[str, str]:
        d = agreement_dir({"test.yaml": doc})
        ps = compile_plans(load_agreements(d, catalogue, today=TODAY), catalogue, keyring)
        return ps.version, ps.plans[0].plan_version

    first, again, changed = (
        versions(base_agreement()),
        versions(base_agreement()),
        versions(base_agreement(version="2")),
    )
    assert first == again
    assert changed[0] != first[0] and changed[1] != first[1]


def test_area_lookup_needs_a_lookup_at_compile(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> None:
    doc = base_agreement()
    fields_of(doc)["location.lsoa_code"] = {"area_lookup": {"source": "latlon"}}
    agreements = load_agreements(agreement_dir({"test.yaml": doc}), catalogue, today=TODAY)
    with pytest.raises(
        Exception, match=r"test\.yaml: event_types\.police\.crime_recorded\.fields\.location\.lsoa_code"
    ):
        compile_plans(agreements, catalogue, keyring)
