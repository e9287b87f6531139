"""Homelessness cases."""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.publish.simulate.people import Person
from streams.publish.simulate.world import Built, World, has, pick, reference


def homelessness_case(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    duty = pick(rng, {"PREVENTION": 50, "RELIEF": 35, "MAIN_DUTY": 15})
    reasons = {"FAMILY_OR_FRIENDS_NO_LONGER_WILLING": 35, "END_OF_PRIVATE_TENANCY": 25}
    reasons |= {
        "DOMESTIC_ABUSE": 30 if has(p, "DOMESTIC_ABUSE") else 8,
        "NON_VIOLENT_RELATIONSHIP_BREAKDOWN": 12,
    }
    reasons |= {"LEAVING_INSTITUTION": 6 if p.pnc_id else 1, "OTHER": 8}
    placed = duty != "PREVENTION" and rng.random() < 0.6
    body = {
        "subject": w.subject(p, "reading_housing"),
        "case_reference": reference(rng, "HN", at),
        "duty": duty,
        "decision_date": at.date(),
        "main_reason": pick(rng, reasons),
        "temporary_accommodation_start": (at + timedelta(days=rng.randint(0, 14))).date() if placed else None,
        "temporary_accommodation_type": rng.choice(["BED_AND_BREAKFAST", "HOSTEL", "NIGHTLY_PAID"])
        if placed
        else None,
        "dependent_children": rng.choice([0, 0, 0, 1, 2, 3]),
    }
    return "reading_housing", body, [(p, "SUBJECT")]
