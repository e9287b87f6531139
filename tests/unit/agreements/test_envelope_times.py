"""Envelope times are generalised per tier by the compiled plan, like any other field.

The attack (issue 17, finding 3): the area-tier ED output to `reading_csp` truncated `assault_at`
to `2026-11` while `envelope.occurred_at` said 2026-11-14 23:47, undoing the generalisation and
giving every recipient a join key to the second.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.agreements import PlanSet, check_agreements, compile_plans, load_agreements
from streams.avro.catalogue import Catalogue
from streams.privacy.keys import KeyRing

from .conftest import TODAY, base_agreement

ASSAULT = datetime(2026, 11, 14, 23, 47, 12, tzinfo=UTC)
RECORDED = datetime(2026, 11, 15, 8, 3, 59, tzinfo=UTC)


def _times(**envelope: Any) -> dict[str, Any]:
    return {"envelope.occurred_at": ASSAULT, "envelope.recorded_at": RECORDED, **envelope}


def test_the_area_tier_gets_envelope_times_to_the_month(
    planset: PlanSet, make_event: Callable[..., dict[str, Any]]
) -> None:
    (plan,) = planset.plans_for("health.ed_assault_attendance", "royal_berkshire_ed")
    assert plan.recipient == "reading_csp"
    event = make_event(
        "health.ed_assault_attendance",
        {"assault_at": ASSAULT, "envelope.source_partner": "royal_berkshire_ed", **_times()},
    )
    decision = plan.apply(event)
    out = decision.output
    assert out is not None, decision.reason
    assert out["assault_at"] == "2026-11"
    assert out["envelope"]["occurred_at"] == "2026-11"
    assert out["envelope"]["recorded_at"] == "2026-11"
    assert "23:47" not in repr(out) and "14" not in str(out["envelope"]["occurred_at"])


def test_the_individual_tier_gets_the_uk_day(
    planset: PlanSet, make_event: Callable[..., dict[str, Any]]
) -> None:
    (plan,) = planset.plans_for("police.crime_recorded", "thames_valley_police")
    summer_night = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 00:30 BST on 1 July
    event = make_event(
        "police.crime_recorded",
        {"crime_category": "ROBBERY", **_times(**{"envelope.occurred_at": summer_night})},
    )
    out = plan.apply(event).output
    assert out is not None
    assert out["envelope"]["occurred_at"] == "2026-07-01"
    assert out["envelope"]["recorded_at"] == "2026-11-15"


def test_the_output_schema_says_the_times_are_generalised(planset: PlanSet) -> None:
    (plan,) = planset.plans_for("health.ed_assault_attendance", "royal_berkshire_ed")
    envelope = next(f for f in plan.output_schema["fields"] if f["name"] == "envelope")
    fields = {f["name"]: f for f in envelope["type"]["fields"]}
    for name in ("occurred_at", "recorded_at"):
        assert fields[name]["transform"] == "truncate_date"
        assert "string" in (t := fields[name]["type"]) or t == "string"


def test_an_agreement_may_choose_another_unit_but_never_the_exact_time(
    catalogue: Catalogue,
    keyring: KeyRing,
    agreement_dir: Callable[..., Path],
    make_event: Callable[..., dict[str, Any]],
) -> None:
    doc = base_agreement()
    doc["event_types"]["police.crime_recorded"]["fields"]["envelope.occurred_at"] = {
        "truncate_date": {"unit": "week"}
    }
    planset = compile_plans(
        load_agreements(agreement_dir({"test.yaml": doc}), catalogue, today=TODAY), catalogue, keyring
    )
    (plan,) = planset.plans_for("police.crime_recorded")
    out = plan.apply(make_event("police.crime_recorded", _times())).output
    assert out is not None
    assert out["envelope"]["occurred_at"] == "2026-W46"
    assert out["envelope"]["recorded_at"] == "2026-11-15"  # not named: the tier's default

    doc["event_types"]["police.crime_recorded"]["fields"]["envelope.occurred_at"] = "keep"
    _, issues = check_agreements(agreement_dir({"test.yaml": doc}), catalogue, today=TODAY)
    assert [(i.key, i.message) for i in issues] == [
        (
            "event_types.police.crime_recorded.fields.envelope.occurred_at",
            "envelope times are always released, generalised: use truncate_date",
        )
    ]


@pytest.mark.parametrize("field", ["envelope.event_id", "envelope.source_partner"])
def test_other_envelope_fields_still_cannot_be_targeted(
    field: str, catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    doc = base_agreement()
    doc["event_types"]["police.crime_recorded"]["fields"][field] = "drop"
    _, issues = check_agreements(agreement_dir({"test.yaml": doc}), catalogue, today=TODAY)
    assert any("the envelope is always released unchanged" in i.message for i in issues)


def test_the_area_tier_cannot_keep_an_exact_date_or_time_in_any_field(
    catalogue: Catalogue, agreement_dir: Callable[..., Path]
) -> None:
    """The same join key as the envelope's, through a body field: refused for an area-tier recipient."""
    doc = base_agreement(
        recipient="reading_csp",
        owners=["royal_berkshire_ed"],
        lawful_basis=["cda_1998_s115", "uk_gdpr_6_1_e"],
        event_types={"health.ed_assault_attendance": {"fields": {"assault_at": "keep", "gender": "keep"}}},
    )
    _, issues = check_agreements(agreement_dir({"test.yaml": doc}), catalogue, today=TODAY)
    assert [(i.key, i.message) for i in issues if i.severity == "error"] == [
        (
            "event_types.health.ed_assault_attendance.fields.assault_at",
            "assault_at: reading_csp is an area-tier recipient: dates and times are generalised "
            "(truncate_date) or dropped, like the envelope's",
        )
    ]
