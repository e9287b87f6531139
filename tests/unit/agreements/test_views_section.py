"""The agreements' `views` sections: validated by the checker, compiled once into view grants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.agreements import PlanSet, check_agreements
from streams.avro.catalogue import Catalogue

from .conftest import TODAY, base_agreement

PROFILE = "views.person_profile"


def _issues(catalogue: Catalogue, directory: Path) -> list[tuple[str, str]]:
    _, issues = check_agreements(directory, catalogue, today=TODAY)
    return [(i.key, i.message) for i in issues if i.severity == "error"]


def test_shipped_grants_give_person_views_to_the_vru_alone(planset: PlanSet) -> None:
    views = planset.views
    assert views.readers("person_profile") == {"vru_analysts"}
    assert views.readers("area_counts") == {"public_open_data"}
    assert views.profile_recipients == ("vru_analysts",)
    for event_type, partner in [
        ("education.exclusion", "reading_schools"),
        ("youth_justice.outcome", "reading_yjs"),
        ("housing.homelessness_case", "reading_housing"),
        ("probation.supervision_event", "probation_thames_valley"),
    ]:
        assert views.profile_sources(event_type, partner) == (), event_type


def test_shipped_social_care_grant_leaves_health_factors_out(planset: PlanSet) -> None:
    (source,) = planset.views.profile_sources("social_care.assessment_factors", "reading_childrens_services")
    assert source.recipient == "vru_analysts"
    assert source.agreement_id == "social-care-to-vru-analysts"
    assert source.factors is not None and "gang_association" in source.factors
    assert "mental_health_need" not in source.factors
    assert "substance_misuse" not in source.factors
    assert source.time_unit == "day"  # individual tier


def test_police_grant_takes_every_factor_of_its_events(planset: PlanSet) -> None:
    (source,) = planset.views.profile_sources("police.crime_recorded", "thames_valley_police")
    assert source.factors is None
    assert source.owners == {"thames_valley_police"}
    # a partner that is not an owner of the agreement gets no grant through it
    assert planset.views.profile_sources("police.crime_recorded", "reading_schools") == ()


def test_times_override_and_list_shorthand(
    catalogue: Catalogue, agreement_dir: Callable[..., Path], keyring: Any
) -> None:
    from streams.agreements import compile_plans, load_agreements

    grant = {"person_profile": {"event_types": {"police.crime_recorded": None}, "times": "month"}}
    d = agreement_dir({"a.yaml": base_agreement(views=grant)})
    planset = compile_plans(load_agreements(d, catalogue, today=TODAY), catalogue, keyring)
    (source,) = planset.views.profile_sources("police.crime_recorded", "thames_valley_police")
    assert source.time_unit == "month"
    d = agreement_dir({"a.yaml": base_agreement(views=["area_counts"])})
    assert _issues(catalogue, d) == []


@pytest.mark.parametrize(
    ("views", "key", "fragment"),
    [
        (
            {"person_profile": {"event_types": {"police.stop_search": None}}},
            f"{PROFILE}.event_types.police.stop_search",
            "not shared by this agreement",
        ),
        ({"person_profile": None}, f"{PROFILE}.event_types", "name the event types"),
        (
            {"person_profile": {"event_types": {"police.crime_recorded": {"factors": ["Not A Factor"]}}}},
            f"{PROFILE}.event_types.police.crime_recorded.factors[0]",
            "not a factor name",
        ),
        ({"person_profile": {"times": "second"}}, "views.person_profile.times", ""),
        (["area_counts", "area_counts"], "views", "listed twice"),
    ],
)
def test_bad_view_sections_are_named_by_key(
    catalogue: Catalogue,
    agreement_dir: Callable[..., Path],
    views: Any,
    key: str,
    fragment: str,
) -> None:
    d = agreement_dir({"a.yaml": base_agreement(views=views)})
    issues = _issues(catalogue, d)
    assert any(k == key and fragment in m for k, m in issues), issues


def test_social_care_facts_need_an_art9_condition_of_their_own(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    doc = base_agreement(
        owners=["reading_childrens_services"],
        event_types={
            "social_care.assessment_factors": {"fields": {"subject.nhs_number": {"pseudonymise": {}}}}
        },
        views={"person_profile": {"event_types": {"social_care.assessment_factors": None}}},
    )
    issues = _issues(catalogue, agreement_dir({"a.yaml": doc}))
    key = f"{PROFILE}.event_types.social_care.assessment_factors"
    assert any(k == key and "special_category_basis" in m for k, m in issues), issues
