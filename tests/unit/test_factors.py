"""The factor catalogue: the repository's factors.yaml against the real schema catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.avro.catalogue import Catalogue, load_catalogue
from streams.errors import ConfigurationError
from streams.settings import ROOT
from streams.views.factors import Fact, FactorExtractor, load_factors

FACTORS = ROOT / "factors.yaml"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "schemas")


@pytest.fixture(scope="module")
def extractor(catalogue: Catalogue) -> FactorExtractor:
    return load_factors(FACTORS, catalogue)


def _crime(category: str, people: list[tuple[str, str | None]], **flags: Any) -> dict[str, Any]:
    return {
        "envelope": {"event_id": "e1"},
        "location": {"lsoa_code": "E01016001", "postcode": None},
        "crime_category": category,
        "knife_or_sharp_instrument": flags.get("knife", False),
        "firearm": False,
        "domestic_abuse": flags.get("domestic", False),
        "people": [{"role": role, "subject": {"postcode": pc}} for role, pc in people],
    }


def _one(extractor: FactorExtractor, event_type: str, **fields: Any) -> tuple[str, ...]:
    facts = extractor.extract(event_type, {"envelope": {}, "subject": {}, "location": None, **fields})
    assert len(facts) == 1 and facts[0].subject_index == 0
    return facts[0].factors


def test_crime_gives_one_fact_per_person_with_role(extractor: FactorExtractor) -> None:
    event = _crime(
        "VIOLENCE_AND_SEXUAL_OFFENCES", [("VICTIM", "RG1 2AB"), ("SUSPECT", "OX4 1AA"), ("WITNESS", None)]
    )
    facts = extractor.extract("police.crime_recorded", event)
    assert facts == [
        Fact(0, "victim", ("prior_violent_victimisation",), "E01016001", "RG1"),
        Fact(1, "suspect", ("involvement_in_violence",), "E01016001", "OX4"),
        Fact(2, "witness", (), "E01016001", None),
    ]


def test_weapon_carrying_goes_to_suspects_not_victims(extractor: FactorExtractor) -> None:
    event = _crime("ROBBERY", [("VICTIM", None), ("OFFENDER", None)], knife=True)
    victim, offender = extractor.extract("police.crime_recorded", event)
    assert victim.factors == ("prior_violent_victimisation",)
    assert offender.factors == ("involvement_in_violence", "weapon_carrying")
    weapons = extractor.extract("police.crime_recorded", _crime("POSSESSION_OF_WEAPONS", [("SUSPECT", None)]))
    assert weapons[0].factors == ("involvement_in_violence", "weapon_carrying")


def test_domestic_abuse_and_other_offending(extractor: FactorExtractor) -> None:
    event = _crime("BURGLARY", [("VICTIM", None), ("SUSPECT", None)], domestic=True)
    victim, suspect = extractor.extract("police.crime_recorded", event)
    assert victim.factors == ("domestic_abuse",)
    assert suspect.factors == ("involvement_in_offending",)


def test_location_postcode_district_wins_over_home_postcode(extractor: FactorExtractor) -> None:
    event = _crime("DRUGS", [("SUSPECT", "OX4 1AA")])
    event["location"] = {"lsoa_code": None, "postcode": "rg1 2ab"}
    assert extractor.extract("police.crime_recorded", event)[0].district == "RG1"
    event["location"] = {"postcode": "not a postcode"}
    assert extractor.extract("police.crime_recorded", event)[0].district == "OX4"


def test_crime_without_people_still_gives_one_area_fact(extractor: FactorExtractor) -> None:
    facts = extractor.extract("police.crime_recorded", _crime("ROBBERY", []))
    assert facts == [Fact(0, None, (), "E01016001", None)]


def test_education_events(extractor: FactorExtractor) -> None:
    assert _one(extractor, "education.exclusion", exclusion_type="SUSPENSION", reason="OFFENSIVE_WEAPON") == (
        "school_exclusion",
        "weapon_carrying",
    )
    assert _one(extractor, "education.exclusion", exclusion_type="PERMANENT", reason="BULLYING") == (
        "school_exclusion",
    )
    assert _one(extractor, "education.attendance_alert", absence_level="PERSISTENT") == (
        "persistent_absence",
    )
    assert _one(extractor, "education.attendance_alert", absence_level="SEVERE") == ("severe_absence",)
    assert _one(extractor, "education.attendance_recovered", previous_level="SEVERE") == (
        "attendance_recovered",
    )
    assert _one(extractor, "education.placement_change", change_type="MANAGED_MOVE") == (
        "alternative_provision",
    )
    assert _one(extractor, "education.placement_change", change_type="RETURN_TO_MAINSTREAM") == ()


def test_social_care_events(extractor: FactorExtractor) -> None:
    factors = ["GANGS", "CHILD_CRIMINAL_EXPLOITATION", "CHILD_SEXUAL_EXPLOITATION", "GOING_MISSING"]
    factors += ["DOMESTIC_ABUSE", "SUBSTANCE_MISUSE", "NEGLECT"]
    assert _one(extractor, "social_care.assessment_factors", factors=factors) == (
        "abuse_or_neglect",
        "criminal_exploitation",
        "domestic_abuse",
        "gang_association",
        "missing_episodes",
        "sexual_exploitation",
        "substance_misuse",
    )
    plan = {"plan_type": "CHILD_PROTECTION", "abuse_category": "NEGLECT"}
    assert _one(extractor, "social_care.plan_event", action="STARTED", **plan) == ("abuse_or_neglect",)
    assert _one(
        extractor, "social_care.plan_event", action="ENDED", end_reason="POSITIVE_OUTCOME", **plan
    ) == ("plan_closed_positive",)
    assert _one(extractor, "social_care.missing_episode", episode_type="MISSING") == (
        "looked_after",
        "missing_episodes",
    )


def test_justice_housing_and_police_person_events(extractor: FactorExtractor) -> None:
    assert _one(extractor, "youth_justice.outcome", offence_category="POSSESSION_OF_WEAPONS") == (
        "involvement_in_offending",
        "involvement_in_violence",
        "weapon_carrying",
    )
    assert _one(extractor, "youth_justice.programme_engagement", status="COMPLETED") == (
        "programme_engagement",
    )
    assert _one(extractor, "youth_justice.programme_engagement", status="DISENGAGED") == ()
    assert _one(extractor, "housing.homelessness_case", duty="RELIEF", main_reason=None) == (
        "housing_instability",
    )
    assert _one(extractor, "police.stop_search", weapon_found=True) == ("weapon_carrying",)
    assert _one(extractor, "police.missing_person", looked_after_child=False) == ("missing_episodes",)


def test_parental_offending_is_validated_but_not_extracted(extractor: FactorExtractor) -> None:
    assert extractor.factors["parental_offending"].requires_linked_adult
    assert _one(extractor, "probation.supervision_event", kind="RECALLED") == ()


def test_anonymous_ed_attendance_counts_for_areas_only(extractor: FactorExtractor) -> None:
    event = {"envelope": {}, "location": {"lsoa_code": "E01016002", "postcode": "RG2 0AA"}}
    assert extractor.extract("health.ed_assault_attendance", event) == [
        Fact(0, None, ("violence_density",), "E01016002", "RG2")
    ]
    assert extractor.factors["violence_density"].aggregate_only


def test_unknown_event_type_gives_an_empty_fact(extractor: FactorExtractor) -> None:
    assert extractor.extract("fire.incident", {"subject": None}) == [Fact(0, None, (), None, None)]


def test_weights_are_signed(extractor: FactorExtractor) -> None:
    weights = extractor.weights()
    assert weights["weapon_carrying"] > 0
    assert weights["programme_engagement"] < 0


# --- validation -----------------------------------------------------------------------------------


def _minimal() -> dict[str, Any]:
    return {
        "version": 1,
        "factors": {
            "weapon_carrying": {
                "kind": "R",
                "domain": "individual",
                "label": "Weapon carrying",
                "description": "d",
                "weight": 3.0,
            }
        },
        "rules": [
            {
                "id": "r1",
                "event_type": "police.stop_search",
                "when": {"weapon_found": True},
                "factors": ["weapon_carrying"],
            }
        ],
    }


def _load(tmp_path: Path, catalogue: Catalogue, data: dict[str, Any]) -> FactorExtractor:
    path = tmp_path / "factors.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_factors(path, catalogue)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["rules"][0].update(event_type="police.nope"),
            r"rules\[0\] \(r1\)\.event_type: unknown event type",
        ),
        (lambda d: d["rules"][0].update(when={"weapon_fund": True}), r"when\.weapon_fund: .*has no field"),
        (
            lambda d: d["rules"][0].update(when={"outcome": ["ARRESTED"]}),
            r"when\.outcome: 'ARRESTED' is not one of",
        ),
        (
            lambda d: d["rules"][0].update(when={"weapon_found": "yes"}),
            r"when\.weapon_found: 'yes' is not a boolean",
        ),
        (lambda d: d["rules"][0].update(factors=["knife"]), r"factors: unknown factor 'knife'"),
        (lambda d: d["factors"]["weapon_carrying"].update(weight=-1), r"factors\.weapon_carrying\.weight"),
        (lambda d: d["factors"]["weapon_carrying"].update(colour="red"), r"factors\.weapon_carrying\.colour"),
        (lambda d: d["factors"]["weapon_carrying"].update(aggregate_only=True), r"aggregate_only"),
        (
            lambda d: d["factors"].update(extra=dict(d["factors"]["weapon_carrying"])),
            r"factors: extra have no rule",
        ),
        (
            lambda d: d["rules"][0].update(
                event_type="social_care.assessment_factors", when={"factors": ["GANGS"]}
            ),
            r"when\.factors: array field: use \{contains_any",
        ),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, catalogue: Catalogue, change: Any, message: str) -> None:
    data = _minimal()
    change(data)
    with pytest.raises(ConfigurationError, match=message) as info:
        _load(tmp_path, catalogue, data)
    assert str(tmp_path / "factors.yaml") in str(info.value)


def test_minimal_catalogue_compiles(tmp_path: Path, catalogue: Catalogue) -> None:
    extractor = _load(tmp_path, catalogue, _minimal())
    assert _one(extractor, "police.stop_search", weapon_found=True) == ("weapon_carrying",)
    assert _one(extractor, "police.stop_search", weapon_found=False) == ()


def test_mapping_conditions(tmp_path: Path, catalogue: Catalogue) -> None:
    data = _minimal()
    data["rules"][0] = {
        "id": "r1",
        "event_type": "education.attendance_alert",
        "when": {"missed_sessions": {"gte": 20}, "unauthorised_sessions": {"present": True}},
        "factors": ["weapon_carrying"],
    }
    extractor = _load(tmp_path, catalogue, data)
    assert _one(extractor, "education.attendance_alert", missed_sessions=25, unauthorised_sessions=3)
    assert not _one(extractor, "education.attendance_alert", missed_sessions=25, unauthorised_sessions=None)
    assert not _one(extractor, "education.attendance_alert", missed_sessions=5, unauthorised_sessions=3)
    data["rules"][0]["when"] = {"school_urn": {"gte": 3}}
    with pytest.raises(ConfigurationError, match="gte/lte need a number field"):
        _load(tmp_path, catalogue, data)
