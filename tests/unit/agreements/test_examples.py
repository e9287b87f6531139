"""The example agreements in agreements/ check clean, compile, and produce schema-valid outputs."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro
import fastavro.validation
import pytest

from streams import topics
from streams.agreements import PlanSet, check_agreements
from streams.avro.catalogue import Catalogue

from .conftest import EXAMPLES, TODAY

EXPECTED = {
    ("vru_analysts", "police.crime_recorded"),
    ("vru_analysts", "police.stop_search"),
    ("vru_analysts", "police.missing_person"),
    ("reading_csp", "health.ed_assault_attendance"),
    ("reading_yjs_team", "education.exclusion"),
    ("reading_yjs_team", "education.attendance_alert"),
    ("vru_analysts", "social_care.assessment_factors"),
    ("vru_analysts", "social_care.missing_episode"),
    ("tvp_offender_management", "probation.supervision_event"),
}
# Values that make each example's row conditions pass.
PASSING = {"probation.supervision_event": {"rosh_level": "HIGH"}}


def test_examples_check_clean(catalogue: Catalogue) -> None:
    agreements, issues = check_agreements(EXAMPLES, catalogue, today=TODAY)
    assert [str(i) for i in issues] == []
    assert len(agreements.agreements) == 6


def test_each_example_compiles_to_one_plan_per_event_type_and_recipient(planset: PlanSet) -> None:
    assert {(p.recipient, p.event_type) for p in planset} == EXPECTED
    for plan in planset:
        assert plan.output_topic == topics.shared(plan.recipient, plan.event_type)
        assert len(plan.plan_version) == 12 and plan.retention_days > 0
    assert set(planset.recipients) >= {"public_open_data", "reading_csp"}


def test_aggregate_recipient_gets_no_plans(planset: PlanSet) -> None:
    assert not [p for p in planset if p.recipient == "public_open_data"]


@pytest.mark.parametrize("nulls", [False, True], ids=["filled", "nullable-null"])
@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}:{k[1]}")
def test_outputs_validate_against_the_derived_schema(
    planset: PlanSet, make_event: Callable[..., dict[str, Any]], key: tuple[str, str], nulls: bool
) -> None:
    recipient, event_type = key
    (plan,) = [p for p in planset.plans_for(event_type) if p.recipient == recipient]
    overrides = {"envelope.source_partner": sorted(plan.owners)[0], **PASSING.get(event_type, {})}
    event = make_event(event_type, overrides, nulls=nulls)
    decision = plan.apply(event)
    if nulls and event_type == "police.missing_person":
        # Its age condition needs a date of birth: without one the row is denied, never shared.
        assert decision.outcome == "denied", decision.reason
        return
    assert decision.outcome == "shared", decision.reason
    parsed = fastavro.parse_schema(plan.output_schema)
    fastavro.validation.validate(decision.output, parsed, raise_errors=True)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, decision.output)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, parsed)
    decoded["envelope"]["event_id"] = str(decoded["envelope"]["event_id"])  # uuid reads back as UUID
    assert decoded == decision.output
