"""Rectification never tells a recipient more than the original did, and finds the current plan."""

from __future__ import annotations

from typing import Any

import pytest

from streams.agreements import PlanSet, compile_plans, load_agreements
from streams.avro.catalogue import load_catalogue
from streams.privacy.keys import KeyRing
from streams.rights.rectify import extra_fields, find_plan
from streams.settings import ROOT


@pytest.fixture(scope="module")
def planset() -> PlanSet:
    catalogue = load_catalogue()
    return compile_plans(load_agreements(ROOT / "agreements", catalogue), catalogue, KeyRing.generate())


def _original(plan: Any) -> dict[str, Any]:
    released = [p for p, r in plan.fields.items() if r.released and not r.transformed]
    transformed = [p for p, r in plan.fields.items() if r.transformed]
    return {"released": released, "transformed": transformed}


def test_the_same_plan_releases_nothing_new(planset: PlanSet) -> None:
    plan = find_plan(planset, "education.exclusion", "reading_schools", "reading_yjs_team", None)
    assert plan is not None and plan.recipient == "reading_yjs_team"
    assert extra_fields(plan, _original(plan)) == []


def test_a_field_the_original_did_not_release_is_caught(planset: PlanSet) -> None:
    plan = find_plan(planset, "education.exclusion", "reading_schools", "reading_yjs_team", None)
    original = _original(plan)
    original["released"].remove("reason")
    assert extra_fields(plan, original) == ["reason"]


def test_an_identifier_withheld_as_invalid_may_arrive_corrected(planset: PlanSet) -> None:
    plan = find_plan(planset, "education.exclusion", "reading_schools", "reading_yjs_team", None)
    original = _original(plan)
    original["transformed"].remove("subject.upn")  # the original's UPN failed its check letter
    assert extra_fields(plan, original) == []


def test_no_plan_means_no_correction(planset: PlanSet) -> None:
    assert find_plan(planset, "education.exclusion", "reading_schools", "vru_analysts", None) is None
    assert find_plan(planset, "education.exclusion", "oxfordshire_schools", "reading_yjs_team", None) is None
