"""School events: exclusions, attendance alerts and recoveries, placement changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from streams.publish.simulate.people import Person
from streams.publish.simulate.world import Built, World, gang_linked, in_reading, pick


def _school(p: Person) -> str:
    base = 109000 if in_reading(p) else 123000
    return str(base + int(p.person_id[1:]) % 60)


def _education_partner(p: Person) -> str:
    return "reading_schools" if in_reading(p) else "oxfordshire_schools"


def exclusion(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    gang = gang_linked(p)
    kind = pick(rng, {"SUSPENSION": 88, "PERMANENT": 8 if p.tier == "high" else 2, "LUNCHTIME": 6})
    reasons = {"PERSISTENT_DISRUPTIVE_BEHAVIOUR": 35, "PHYSICAL_ASSAULT_AGAINST_PUPIL": 15}
    reasons |= {
        "PHYSICAL_ASSAULT_AGAINST_ADULT": 6,
        "VERBAL_ABUSE_AGAINST_ADULT": 15,
        "DRUG_AND_ALCOHOL_RELATED": 5,
    }
    reasons |= {"OFFENSIVE_WEAPON": 12 if gang else 2, "BULLYING": 4, "DAMAGE": 3, "OTHER": 5}
    partner = _education_partner(p)
    body = {
        "subject": w.subject(p, partner),
        "school_urn": _school(p),
        "exclusion_type": kind,
        "start_date": at.date(),
        "sessions": None if kind == "PERMANENT" else rng.randint(1, 10),
        "reason": pick(rng, reasons),
        "year_group": max(0, min(13, p.age(at.date()) - 4)),
    }
    return partner, body, [(p, "SUBJECT")]


def _attendance_period(w: World, p: Person, partner: str, at: datetime) -> dict[str, Any]:
    """Who, where and the six school weeks to `at` that an attendance event reports on."""
    return {
        "subject": w.subject(p, partner),
        "school_urn": _school(p),
        "period_start": at.date() - timedelta(days=42),
        "period_end": at.date(),
    }


def attendance_alert(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    possible = rng.randint(50, 70)
    severe = rng.random() < (0.4 if p.tier == "high" else 0.12)
    missed = round(possible * (rng.uniform(0.5, 0.9) if severe else rng.uniform(0.1, 0.45)))
    partner = _education_partner(p)
    w.state.setdefault(("*", "absent"), {})[p.person_id] = (p, "SEVERE" if severe else "PERSISTENT")
    body = {
        **_attendance_period(w, p, partner, at),
        "possible_sessions": possible,
        "missed_sessions": missed,
        "unauthorised_sessions": rng.randint(0, missed),
        "absence_level": "SEVERE" if severe else "PERSISTENT",
    }
    return partner, body, [(p, "SUBJECT")]


def attendance_recovered(w: World, p: Person, at: datetime) -> Built | None:
    absent: dict[str, tuple[Person, str]] = w.state.get(("*", "absent"), {})
    if not absent:  # only pupils who were persistently absent can recover
        return None
    p, previous = absent.pop(w.rng.choice(sorted(absent)))
    possible = w.rng.randint(50, 70)
    partner = _education_partner(p)
    body = {
        **_attendance_period(w, p, partner, at),
        "possible_sessions": possible,
        "missed_sessions": w.rng.randint(0, possible // 12),
        "previous_level": previous,
    }
    return partner, body, [(p, "SUBJECT")]


def placement_change(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    change = pick(
        rng,
        {
            "MANAGED_MOVE": 30,
            "ALTERNATIVE_PROVISION": 40 if p.tier == "high" else 15,
            "ELECTIVE_HOME_EDUCATION": 15,
        }
        | {"CHILD_MISSING_EDUCATION": 10, "RETURN_TO_MAINSTREAM": 10},
    )
    partner = _education_partner(p)
    body = {
        "subject": w.subject(p, partner),
        "change_type": change,
        "effective_date": at.date(),
        "from_school_urn": _school(p),
        "to_provider": "Riverside Learning Centre" if change == "ALTERNATIVE_PROVISION" else None,
        "notes": rng.choice(
            [None, None, "Agreed at fair access panel", f"Parent of {p.given_name} requested move"]
        ),
    }
    return partner, body, [(p, "SUBJECT")]
