"""The simulated event types: for each, its share of traffic, who it can be about and its builder.

`SPECS` lists every simulated event type with its share of traffic, eligible ages, a propensity
(how much more often risky people appear), who a partner covers and a builder (one module per
sector: `police`, `health`, `education`, `social_care`, `justice`, `housing`). The simulation adds
the envelope.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.publish.simulate import education, health, housing, justice, police, social_care
from streams.publish.simulate.people import Person
from streams.publish.simulate.world import Spec, everyone, has, in_reading, in_school_areas

__all__ = ["SPECS", "Spec"]


def _risk(scale: float, base: float = 0.05) -> Callable[[Person], float]:
    return lambda p: base + scale * p.risk


SPECS: tuple[Spec, ...] = (
    Spec("police.crime_recorded", 22, (10, 70), _risk(6.0), everyone, police.crime_recorded),
    Spec("police.crime_recorded/victim", 0, (8, 80), _risk(1.5, 0.4), everyone, police.crime_recorded),
    Spec("police.stop_search", 9, (12, 45), _risk(5.0, 0.1), everyone, police.stop_search),
    Spec(
        "police.missing_person",
        4,
        (10, 17),
        lambda p: 0.05 + 4.0 * has(p, "GOING_MISSING") + p.risk,
        everyone,
        police.missing_person,
    ),
    Spec(
        "health.ed_assault_attendance", 7, (10, 70), _risk(2.5, 0.3), everyone, health.ed_assault_attendance
    ),
    Spec("education.exclusion", 9, (5, 16), _risk(4.0, 0.1), in_school_areas, education.exclusion),
    Spec(
        "education.attendance_alert", 8, (5, 16), _risk(3.0, 0.3), in_school_areas, education.attendance_alert
    ),
    Spec(
        "education.attendance_recovered",
        3,
        (5, 16),
        _risk(1.0, 0.5),
        in_school_areas,
        education.attendance_recovered,
    ),
    Spec("education.placement_change", 3, (5, 16), _risk(3.0), in_school_areas, education.placement_change),
    Spec(
        "social_care.assessment_factors",
        5,
        (0, 17),
        _risk(4.0, 0.1),
        in_reading,
        social_care.assessment_factors,
    ),
    Spec("social_care.plan_event", 3, (0, 17), _risk(3.0, 0.1), in_reading, social_care.plan_event),
    Spec(
        "social_care.missing_episode",
        3,
        (8, 17),
        lambda p: float(p.looked_after) * (1 + 3 * has(p, "GOING_MISSING")),
        in_reading,
        social_care.missing_episode,
    ),
    Spec(
        "probation.supervision_event",
        4,
        (18, 70),
        lambda p: float(p.pnc_id is not None) * p.risk,
        everyone,
        justice.supervision_event,
    ),
    Spec("youth_justice.outcome", 4, (10, 17), _risk(5.0, 0.02), in_reading, justice.youth_outcome),
    Spec(
        "youth_justice.programme_engagement",
        3,
        (10, 19),
        _risk(2.0, 0.2),
        in_reading,
        justice.programme_engagement,
    ),
    Spec("housing.homelessness_case", 3, (16, 70), _risk(1.5, 0.2), in_reading, housing.homelessness_case),
)
