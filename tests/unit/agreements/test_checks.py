"""`check_agreements` names the file and key of every problem; `load_agreements` refuses them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from streams.agreements import check_agreements, load_agreements
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError

from .conftest import EXAMPLES, TODAY, base_agreement, fields_of

ET = "event_types.police.crime_recorded"


def _fields(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        fields_of(doc).update(fields)

    return change


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.update(values)


def _where(*conditions: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["event_types"]["police.crime_recorded"]["where"] = list(conditions)

    return change


# (change to the base agreement, key named, fragment of the message)
CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "unknown field": (
        _fields(**{"subject.nhs_numbr": "keep"}),
        f"{ET}.fields.subject.nhs_numbr",
        "no such field in",
    ),
    "unknown tag": (_fields(**{"tag:pii:secret": "drop"}), f"{ET}.fields.tag:pii:secret", "unknown tag"),
    "tag absent from event type": (
        _fields(**{"tag:special_category:health": "drop"}),
        f"{ET}.fields.tag:special_category:health",
        "no field tagged special_category:health",
    ),
    "unknown operator": (
        _fields(offence_code={"hash": {}}),
        f"{ET}.fields.offence_code",
        "unknown operator 'hash'",
    ),
    "bad params": (
        _fields(**{"subject.date_of_birth": {"age_band": {"bands": [18, 10]}}}),
        f"{ET}.fields.subject.date_of_birth",
        "bands",
    ),
    "unknown param": (
        _fields(**{"subject.postcode": {"postcode_district": {"precision": 2}}}),
        f"{ET}.fields.subject.postcode",
        "precision",
    ),
    "age band on a string": (
        _fields(offence_code={"age_band": {"bands": [10]}}),
        f"{ET}.fields.offence_code",
        "needs a date",
    ),
    "pseudonymise a date": (
        _fields(**{"subject.date_of_birth": {"pseudonymise": {"identifier": "date_of_birth"}}}),
        f"{ET}.fields.subject.date_of_birth",
        "needs a string field",
    ),
    "pseudonymise as the wrong kind": (
        _fields(**{"subject.nhs_number": {"pseudonymise": {"identifier": "upn"}}}),
        f"{ET}.fields.subject.nhs_number",
        "holds nhs_number, not upn",
    ),
    "operator on a record": (
        _fields(location={"postcode_district": {}}),
        f"{ET}.fields.location",
        "applies to single fields",
    ),
    "envelope rule": (
        _fields(**{"envelope.source_partner": "drop"}),
        f"{ET}.fields.envelope.source_partner",
        "always released",
    ),
    "conflicting tags": (
        _fields(**{"tag:pii:quasi": "drop", "tag:identifier:postcode": {"postcode_district": {}}}),
        f"{ET}.fields.tag:identifier:postcode",
        "subject.postcode matches conflicting rules",
    ),
    "unknown event type": (
        lambda d: d["event_types"].update({"police.crime_recordd": {"fields": {}}}),
        "event_types.police.crime_recordd",
        "unknown event type",
    ),
    "owner not a partner": (
        _set(owners=["thames_valley_police", "tvp"]),
        "owners[1]",
        "unknown partner 'tvp'",
    ),
    "owner does not publish": (
        _set(owners=["thames_valley_police", "reading_schools"]),
        "owners[1]",
        "publishes none of this agreement's event types",
    ),
    "no owner publishes": (_set(owners=["reading_schools"]), ET, "no owner publishes police.crime_recorded"),
    "unknown lawful basis": (
        _set(lawful_basis=["uk_gdpr_6_1_e", "gdpr_6_1_f"]),
        "lawful_basis[1]",
        "unknown lawful basis",
    ),
    "gateway without processing basis": (
        _set(lawful_basis=["cda_1998_s115"]),
        "lawful_basis",
        "needs a basis for processing",
    ),
    "special category basis not Art 9/10": (
        _set(special_category_basis=["uk_gdpr_6_1_e"]),
        "special_category_basis[0]",
        "not an Art 9/10 condition",
    ),
    "special category data without basis": (
        _fields(**{"people[].role": "keep"}),
        "special_category_basis",
        "people[].role (special_category:criminal_offence)",
    ),
    "unknown recipient": (_set(recipient="vru"), "recipient", "unknown recipient 'vru'"),
    "aggregate tier gets events": (
        _set(recipient="public_open_data"),
        "event_types",
        "aggregate-tier recipient",
    ),
    "area tier gets a pseudonym": (
        _set(recipient="reading_csp"),
        f"{ET}.fields.subject.nhs_number",
        "no direct identifiers",
    ),
    "area tier keeps a quasi identifier": (
        lambda d: d.update(
            recipient="reading_csp", event_types={"police.crime_recorded": {"fields": {"location": "keep"}}}
        ),
        f"{ET}.fields.location",
        "location.postcode: reading_csp is an area-tier recipient: quasi-identifiers must be generalised",
    ),
    "direct identifier kept": (
        _fields(**{"subject.pnc_id": "keep"}),
        f"{ET}.fields.subject.pnc_id",
        "never released as is",
    ),
    "free text kept via parent": (
        _fields(location="keep"),
        f"{ET}.fields.location",
        "location.description: free text",
    ),
    "foreign pseudonym domain": (
        _fields(
            **{
                "subject.nhs_number": {
                    "pseudonymise": {"identifier": "nhs_number", "domain": "recipient:reading_csp"}
                }
            }
        ),
        f"{ET}.fields.subject.nhs_number",
        "would let another recipient join",
    ),
    "view above the tier": (
        lambda d: d.update(recipient="reading_csp", event_types={}, views=["person_profile"]),
        "views.person_profile",
        "needs an individual-tier recipient",
    ),
    "shares nothing": (_set(event_types={}), "event_types", "shares nothing"),
    "condition on unknown field": (
        _where({"field": "category", "in": ["ROBBERY"]}),
        f"{ET}.where[0].field",
        "no such field",
    ),
    "condition value not an enum symbol": (
        _where({"any_of": [{"field": "crime_category", "in": ["Robbery"]}]}),
        f"{ET}.where[0].any_of[0].in",
        "'Robbery' is not a value of crime_category",
    ),
    "age condition on a string": (
        _where({"field": "offence_code", "age_under": 25}),
        f"{ET}.where[0].age_under",
        "not a date",
    ),
    "equals of the wrong type": (
        _where({"field": "firearm", "equals": "yes"}),
        f"{ET}.where[0].equals",
        "not a boolean",
    ),
    "condition with two tests": (
        _where({"field": "firearm", "equals": True, "in": [True]}),
        f"{ET}.where[0]",
        "exactly one of",
    ),
    "missing key": (lambda d: d.pop("purpose"), "purpose", "required"),
    "unknown key": (_set(valid_until="2027-01-01"), "valid_until", "unknown key"),
    "bad enum value": (_set(on_invalid_identifier="skip"), "on_invalid_identifier", "withhold_field"),
    "bad pseudonym domain": (_set(pseudonym_domain="bus:linkage"), "pseudonym_domain", "purpose:<name>"),
    "float version": (_set(version=1.0), "version", "quote it"),
    "bad treatment shape": (
        _fields(offence_code=["keep"]),
        f"{ET}.fields.offence_code",
        "expected an operator name",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_names_file_and_key(
    case: str, catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    change, key, fragment = CASES[case]
    doc = copy.deepcopy(base_agreement())
    change(doc)
    d = agreement_dir({"test.yaml": doc})
    _, issues = check_agreements(d, catalogue, today=TODAY)
    errors = [i for i in issues if i.severity == "error"]
    assert any(i.file == d / "test.yaml" and i.key == key and fragment in i.message for i in errors), [
        str(i) for i in errors
    ]
    with pytest.raises(ConfigurationError, match=r"test\.yaml: "):
        load_agreements(d, catalogue, today=TODAY)


def test_base_agreement_is_valid(catalogue: Catalogue, agreement_dir: Callable[..., Path]) -> None:
    d = agreement_dir({"test.yaml": base_agreement()})
    agreements, issues = check_agreements(d, catalogue, today=TODAY)
    assert issues == [] and [a.id for a in agreements.agreements] == ["test-agreement"]


def test_health_data_needs_more_than_s16(catalogue: Catalogue, agreement_dir: Callable[..., Path]) -> None:
    doc = base_agreement(
        owners=["reading_childrens_services"],
        lawful_basis=["pcsc_2022_s16", "uk_gdpr_6_1_e"],
        event_types={
            "social_care.plan_event": {
                "fields": {"subject.local_id": {"pseudonymise": {"identifier": "local_id"}}}
            }
        },
    )
    d = agreement_dir({"sc.yaml": doc})
    _, issues = check_agreements(d, catalogue, today=TODAY)
    keys = {i.key: i.message for i in issues}
    assert "person-level data from a social_care partner" in keys["special_category_basis"]
    assert "s.16(4)" in keys["lawful_basis"]


def test_two_agreements_for_the_same_flow(catalogue: Catalogue, agreement_dir: Callable[..., Path]) -> None:
    d = agreement_dir({"a.yaml": base_agreement(), "b.yaml": base_agreement(id="second")})
    _, issues = check_agreements(d, catalogue, today=TODAY)
    assert [(i.file.name, i.key) for i in issues] == [("b.yaml", ET)]
    assert "already covered by test-agreement" in issues[0].message


def test_duplicate_ids_and_yaml_keys(catalogue: Catalogue, agreement_dir: Callable[..., Path]) -> None:
    text = yaml.safe_dump(base_agreement(), sort_keys=False) + "purpose: again\n"
    other = base_agreement(event_types={"police.stop_search": {"fields": {"outcome": "keep"}}})
    d = agreement_dir({"dup.yaml": text, "other.yaml": other, "same-id.yaml": other})
    _, issues = check_agreements(d, catalogue, today=TODAY)
    messages = {(i.file.name, i.key): i.message for i in issues}
    last_line = f"line {text.count(chr(10))}"
    assert "duplicate key 'purpose'" in messages[("dup.yaml", last_line)]
    assert "also used by" in messages[("same-id.yaml", "id")]


def test_review_soon_is_a_warning_only(catalogue: Catalogue, agreement_dir: Callable[..., Path]) -> None:
    d = agreement_dir({"test.yaml": base_agreement(review_date="2026-06-20")})
    agreements, issues = check_agreements(d, catalogue, today=TODAY)
    assert [(i.severity, i.key) for i in issues] == [("warning", "review_date")]
    assert len(agreements.agreements) == 1
    assert load_agreements(d, catalogue, today=TODAY).warnings == tuple(issues)


def test_recipients_file_is_checked(catalogue: Catalogue, agreement_dir: Callable[..., Path]) -> None:
    d = agreement_dir({"test.yaml": base_agreement()})
    (d / "recipients.yaml").write_text(
        "recipients:\n  - {id: vru_analysts, name: VRU, organisation: VRU, tier: personal}\n",
        encoding="utf-8",
    )
    _, issues = check_agreements(d, catalogue, today=TODAY)
    assert any(i.file.name == "recipients.yaml" and i.key == "recipients[0].tier" for i in issues)


def test_cli_check_prints_one_line_per_problem(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    import typer

    from sharebus.agreements import register

    doc = base_agreement()
    fields_of(doc)["subject.nhs_numbr"] = fields_of(doc).pop("subject.nhs_number")
    d = agreement_dir({"police-vru.yaml": doc}, examples=True)
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `agreements` a sub-command
    runner = CliRunner()
    result = runner.invoke(app, ["agreements", "check", str(d), "--today", TODAY.isoformat()])
    assert result.exit_code == 1
    assert (
        f"{d}/police-vru.yaml: {ET}.fields.subject.nhs_numbr: no such field in police.crime_recorded"
        in result.stdout
    )
    ok = runner.invoke(app, ["agreements", "check", str(EXAMPLES), "--today", TODAY.isoformat()])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: 6 agreement(s)")


def test_agreements_feeding_one_topic_must_agree_on_its_schema(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    def doc(owner: str, fields: dict[str, Any]) -> dict[str, Any]:
        return base_agreement(
            id=owner,
            owners=[owner],
            recipient="reading_yjs_team",
            event_types={"education.exclusion": {"fields": fields}},
        )

    same = {"reason": "keep", "subject.upn": {"pseudonymise": {"identifier": "upn"}}}
    d = agreement_dir({"a.yaml": doc("reading_schools", same), "b.yaml": doc("oxfordshire_schools", same)})
    assert check_agreements(d, catalogue, today=TODAY)[1] == []
    d = agreement_dir(
        {"a.yaml": doc("reading_schools", same), "b.yaml": doc("oxfordshire_schools", {"reason": "keep"})}
    )
    (issue,) = check_agreements(d, catalogue, today=TODAY)[1]
    assert (issue.file.name, issue.key) == ("b.yaml", "event_types.education.exclusion")
    assert "shared.reading_yjs_team.education.exclusion is also fed by reading_schools" in issue.message


def test_a_passed_review_date_is_reported_and_lapses_the_agreement_alone(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    d = agreement_dir({"test.yaml": base_agreement(review_date="2026-01-31")})
    _, issues = check_agreements(d, catalogue, today=TODAY)
    assert [(i.severity, i.key, i.lapse) for i in issues] == [("error", "review_date", True)]
    assert "review date 2026-01-31 has passed" in issues[0].message
    loaded = load_agreements(d, catalogue, today=TODAY)  # no fault in the file: nothing raised
    assert loaded.agreements == () and [x.agreement.id for x in loaded.lapsed] == ["test-agreement"]
