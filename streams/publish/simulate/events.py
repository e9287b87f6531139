"""Event builders: for each event type, who it can be about, how likely, which partner, and fields.

`SPECS` lists every simulated event type with its share of traffic, eligible ages, a propensity
(how much more often risky people appear) and a builder. Builders get the chosen person and a
`World` (random source, geography, partner records, per-person state) and return the partner
and the event body; the simulation adds the envelope.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from streams.publish.simulate.geography import Geography, Place
from streams.publish.simulate.people import Person, in_berkshire


class World(Protocol):
    rng: random.Random
    geo: Geography
    state: dict[tuple[str, str], Any]

    def subject(self, person: Person, partner: str) -> dict[str, Any]: ...
    def pick(self, event_type: str, exclude: Person | None = None) -> Person: ...


Built = tuple[str, dict[str, Any], list[tuple[Person, str]]]  # partner, body, [(person, role)]
Builder = Callable[[World, Person, datetime], Built | None]


@dataclass(frozen=True)
class Spec:
    event_type: str
    weight: float
    ages: tuple[int, int]
    propensity: Callable[[Person], float]
    covered: Callable[[Person], bool]
    build: Builder


def _has(p: Person, *factors: str) -> bool:
    return any(f in p.factors for f in factors)


def _gang(p: Person) -> bool:
    return _has(p, "GANGS", "CHILD_CRIMINAL_EXPLOITATION")


def _reading(p: Person) -> bool:
    return p.home.local_authority == "Reading"


def _schools(p: Person) -> bool:
    return p.home.local_authority in ("Reading", "Oxfordshire")


def _everyone(p: Person) -> bool:
    return True


def _location(place: Place, description: str | None = None) -> dict[str, Any]:
    return {
        "postcode": place.postcode,
        "lsoa_code": place.lsoa_code,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "description": description,
    }


def _pick(rng: random.Random, table: Mapping[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _ref(rng: random.Random, prefix: str, when: datetime) -> str:
    return f"{prefix}/{when:%y}/{rng.randrange(10**6):06d}"


# --- police -------------------------------------------------------------------------------------

OFFENCES = {
    "VIOLENCE_AND_SEXUAL_OFFENCES": [
        ("8/1", "Assault occasioning actual bodily harm"),
        ("105/1", "Assault without injury"),
        ("5/1", "Wounding with intent to do grievous bodily harm"),
        ("8/6", "Inflicting grievous bodily harm without intent"),
    ],
    "POSSESSION_OF_WEAPONS": [
        ("10C/1", "Possession of article with blade or point"),
        ("10A/1", "Possession of offensive weapon"),
    ],
    "ROBBERY": [("34B/1", "Robbery of personal property")],
    "DRUGS": [
        ("92A/1", "Possession with intent to supply a controlled drug"),
        ("92D/1", "Possession of cannabis"),
    ],
    "PUBLIC_ORDER": [("9/1", "Public fear, alarm or distress")],
    "CRIMINAL_DAMAGE_AND_ARSON": [("58C/1", "Criminal damage to a vehicle")],
    "THEFT_FROM_THE_PERSON": [("39/1", "Theft from the person")],
    "SHOPLIFTING": [("46/1", "Shoplifting")],
    "BURGLARY": [("28E/1", "Burglary - residential")],
}
PLACES = [
    "Outside a takeaway on the high street",
    "Bus station",
    "Play area in the park",
    "Alleyway behind the shops",
    "Residential street",
    "Outside a secondary school",
    "Railway station forecourt",
    "Town centre car park",
    "Underpass near the ring road",
    "Inside a nightclub",
]


_OUTCOMES = {"UNDER_INVESTIGATION": 25, "CHARGED_OR_SUMMONSED": 12, "EVIDENTIAL_DIFFICULTIES": 25}
_OUTCOMES |= {
    "VICTIM_DOES_NOT_SUPPORT": 15,
    "COMMUNITY_RESOLUTION": 5,
    "CAUTION": 4,
    "NOT_IN_PUBLIC_INTEREST": 2,
}


def crime_recorded(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    gang = _gang(p)
    weights = {"VIOLENCE_AND_SEXUAL_OFFENCES": 40, "POSSESSION_OF_WEAPONS": 14 if gang else 5, "ROBBERY": 6}
    weights |= {"DRUGS": 14 if gang else 8, "PUBLIC_ORDER": 8, "CRIMINAL_DAMAGE_AND_ARSON": 7}
    weights |= {"THEFT_FROM_THE_PERSON": 4, "SHOPLIFTING": 8, "BURGLARY": 4}
    category = _pick(rng, weights)
    code, title = rng.choice(OFFENCES[category])
    people: list[tuple[Person, str]] = []
    if rng.random() < 0.8:
        people.append((p, "SUSPECT" if rng.random() < 0.7 else "OFFENDER"))
        if (
            category in ("VIOLENCE_AND_SEXUAL_OFFENCES", "ROBBERY", "THEFT_FROM_THE_PERSON")
            or rng.random() < 0.3
        ):
            people.append((w.pick("police.crime_recorded/victim", exclude=p), "VICTIM"))
    else:
        people.append((p, "VICTIM"))
    if rng.random() < 0.1:
        people.append((w.pick("police.crime_recorded/victim", exclude=p), "WITNESS"))
    suspect = any(role in ("SUSPECT", "OFFENDER") for _, role in people)
    violent = category in ("VIOLENCE_AND_SEXUAL_OFFENCES", "ROBBERY", "POSSESSION_OF_WEAPONS")
    victim_da = any(_has(v, "DOMESTIC_ABUSE") for v, role in people if role == "VICTIM")
    description = rng.choice(PLACES)
    if rng.random() < 0.02:  # free text naming someone: must never leave the bus
        description += f", near {p.given_name} {p.family_name}'s address"
    body = {
        "location": _location(w.geo.near(rng, p.home), description),
        "crime_reference": _ref(rng, "43", at),
        "offence_code": code,
        "offence_description": title,
        "crime_category": category,
        "knife_or_sharp_instrument": violent and rng.random() < (0.35 if gang else 0.07),
        "firearm": violent and rng.random() < (0.02 if gang else 0.002),
        "domestic_abuse": category == "VIOLENCE_AND_SEXUAL_OFFENCES"
        and rng.random() < (0.6 if victim_da else 0.15),
        "outcome": _pick(
            rng, _OUTCOMES if suspect else {"UNDER_INVESTIGATION": 30, "NO_SUSPECT_IDENTIFIED": 70}
        ),
        "people": [{"role": role, "subject": w.subject(q, "thames_valley_police")} for q, role in people],
    }
    return "thames_valley_police", body, people


def _age_range(age: int) -> str:
    return "UNDER_10" if age < 10 else "AGE_10_17" if age < 18 else "AGE_18_24" if age < 25 else "AGE_25_34"


def stop_search(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    gang = _gang(p)
    obj = _pick(
        rng, {"CONTROLLED_DRUGS": 55, "OFFENSIVE_WEAPONS": 40 if gang else 15, "STOLEN_GOODS": 10, "OTHER": 5}
    )
    legislation = {"CONTROLLED_DRUGS": "MISUSE_OF_DRUGS_ACT_S23"}.get(obj, "PACE_S1")
    if obj == "OFFENSIVE_WEAPONS" and rng.random() < 0.1:
        legislation = "CJPOA_S60"
    found = rng.random() < (0.35 if gang else 0.15)
    weapon = found and obj == "OFFENSIVE_WEAPONS"
    outcome = (
        _pick(rng, {"ARREST": 50, "COMMUNITY_RESOLUTION": 25, "DRUGS_POSSESSION_WARNING": 25})
        if found
        else "NO_FURTHER_ACTION"
    )
    body = {
        "subject": w.subject(p, "thames_valley_police"),
        "location": _location(w.geo.near(rng, p.home)),
        "search_reference": _ref(rng, "SS", at),
        "legislation": legislation,
        "object_of_search": obj,
        "outcome": outcome,
        "outcome_linked_to_object": found,
        "weapon_found": weapon,
        "age_range": _age_range(p.age(at.date())),
        "gender": p.gender,
    }
    return "thames_valley_police", body, [(p, "SUBJECT")]


def missing_person(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    found = at + timedelta(hours=rng.uniform(2, 72))
    body = {
        "subject": w.subject(p, "thames_valley_police"),
        "location": _location(p.home),
        "episode_id": _ref(rng, "MP", at),
        "reported_at": at,
        "found_at": found if rng.random() < 0.95 else None,
        "risk_grade": _pick(
            rng, {"LOW": 30, "MEDIUM": 50, "HIGH": 20 if _gang(p) else 8, "NO_APPARENT_RISK": 10}
        ),
        "exploitation_concern": _has(p, "GANGS", "CHILD_CRIMINAL_EXPLOITATION", "CHILD_SEXUAL_EXPLOITATION"),
        "looked_after_child": p.looked_after,
        "found_location": _location(w.geo.near(rng, p.home, stay=0.3)),
    }
    return "thames_valley_police", body, [(p, "SUBJECT")]


# --- health -------------------------------------------------------------------------------------

AGE_BANDS = [(9, "AGE_0_9"), (14, "AGE_10_14"), (17, "AGE_15_17"), (24, "AGE_18_24"), (34, "AGE_25_34")]
AGE_BANDS += [(49, "AGE_35_49"), (64, "AGE_50_64"), (200, "AGE_65_PLUS")]
LOCATION_TYPES = {
    "STREET": 35,
    "HOME": 20,
    "PUB_OR_CLUB": 15,
    "SCHOOL_OR_COLLEGE": 5,
    "PARK_OR_OPEN_SPACE": 8,
}
LOCATION_TYPES |= {"SHOP_OR_TAKEAWAY": 7, "PUBLIC_TRANSPORT": 5, "WORKPLACE": 3, "OTHER": 2}


def ed_assault_attendance(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    age = p.age(at.date())
    methods = {"BODY_PART": 45, "KNIFE_OR_SHARP_OBJECT": 30 if _gang(p) else 8, "BLUNT_OBJECT": 12}
    methods |= {"GLASS_OR_BOTTLE": 6, "OTHER_WEAPON": 4, "UNKNOWN": 10}
    partner = "royal_berkshire_ed" if in_berkshire(p) else "john_radcliffe_ed"
    body = {
        "location": _location(w.geo.near(rng, p.home), rng.choice(PLACES)),
        "site_code": "RHW01" if partner == "royal_berkshire_ed" else "RTH08",
        "arrival_at": at + timedelta(minutes=rng.randint(15, 360)),
        "assault_at": at if rng.random() < 0.85 else None,
        "age_band": next(band for limit, band in AGE_BANDS if age <= limit),
        "gender": p.gender,
        "assault_method": _pick(rng, methods),
        "assault_location_type": _pick(rng, LOCATION_TYPES),
        "disposal": _pick(
            rng, {"DISCHARGED": 75, "ADMITTED": 15, "LEFT_BEFORE_TREATMENT": 8, "TRANSFERRED": 2}
        ),
    }
    return partner, body, [(p, "ANONYMOUS")]


# --- education ----------------------------------------------------------------------------------


def _school(p: Person) -> str:
    base = 109000 if _reading(p) else 123000
    return str(base + int(p.person_id[1:]) % 60)


def _education_partner(p: Person) -> str:
    return "reading_schools" if _reading(p) else "oxfordshire_schools"


def exclusion(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    gang = _gang(p)
    kind = _pick(rng, {"SUSPENSION": 88, "PERMANENT": 8 if p.tier == "high" else 2, "LUNCHTIME": 6})
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
        "reason": _pick(rng, reasons),
        "year_group": max(0, min(13, p.age(at.date()) - 4)),
    }
    return partner, body, [(p, "SUBJECT")]


def attendance_alert(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    possible = rng.randint(50, 70)
    severe = rng.random() < (0.4 if p.tier == "high" else 0.12)
    missed = round(possible * (rng.uniform(0.5, 0.9) if severe else rng.uniform(0.1, 0.45)))
    partner = _education_partner(p)
    w.state.setdefault(("*", "absent"), {})[p.person_id] = (p, "SEVERE" if severe else "PERSISTENT")
    body = {
        "subject": w.subject(p, partner),
        "school_urn": _school(p),
        "period_start": at.date() - timedelta(days=42),
        "period_end": at.date(),
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
        "subject": w.subject(p, partner),
        "school_urn": _school(p),
        "period_start": at.date() - timedelta(days=42),
        "period_end": at.date(),
        "possible_sessions": possible,
        "missed_sessions": w.rng.randint(0, possible // 12),
        "previous_level": previous,
    }
    return partner, body, [(p, "SUBJECT")]


def placement_change(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    change = _pick(
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


# --- social care --------------------------------------------------------------------------------

CSC = "reading_childrens_services"


def assessment_factors(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    factors = [f for f in p.factors if rng.random() < 0.85] or [
        rng.choice(["NEGLECT", "DOMESTIC_ABUSE", "OTHER"])
    ]
    outcome = _pick(
        rng, {"CHILD_IN_NEED": 40, "EARLY_HELP": 25, "NO_FURTHER_ACTION": 20, "CHILD_PROTECTION_ENQUIRY": 15}
    )
    body = {
        "subject": w.subject(p, CSC),
        "assessment_id": _ref(rng, "AS", at),
        "assessment_date": at.date(),
        "factors": factors,
        "outcome": outcome,
    }
    return CSC, body, [(p, "SUBJECT")]


def plan_event(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    key = (p.person_id, "plan")
    open_plan = w.state.pop(key, None)
    if open_plan is None:
        plan_type = "CHILD_PROTECTION" if rng.random() < 0.35 else "CHILD_IN_NEED"
        open_plan = (_ref(rng, "PL", at), plan_type)
        w.state[key] = open_plan
        action, end_reason = "STARTED", None
    else:
        action = "ENDED"
        end_reason = _pick(
            rng, {"POSITIVE_OUTCOME": 45, "STEPPED_DOWN": 25, "ESCALATED": 10, "MOVED_AWAY": 10, "OTHER": 10}
        )
    plan_id, plan_type = open_plan
    body = {
        "subject": w.subject(p, CSC),
        "plan_id": plan_id,
        "plan_type": plan_type,
        "action": action,
        "event_date": at.date(),
        "abuse_category": _pick(
            rng, {"NEGLECT": 45, "EMOTIONAL_ABUSE": 35, "PHYSICAL_ABUSE": 10, "SEXUAL_ABUSE": 4}
        )
        if plan_type == "CHILD_PROTECTION"
        else None,
        "end_reason": end_reason,
    }
    return CSC, body, [(p, "SUBJECT")]


def missing_episode(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    returned = rng.random() < 0.95
    body = {
        "subject": w.subject(p, CSC),
        "episode_id": _ref(rng, "ME", at),
        "episode_type": "MISSING" if rng.random() < 0.7 else "AWAY_WITHOUT_AUTHORISATION",
        "started_at": at,
        "ended_at": at + timedelta(hours=rng.uniform(3, 96)) if returned else None,
        "return_interview": _pick(
            rng, {"OFFERED_AND_ACCEPTED": 55, "OFFERED_AND_DECLINED": 30, "NOT_OFFERED": 10}
        )
        if returned
        else "PENDING",
    }
    return CSC, body, [(p, "SUBJECT")]


# --- probation, youth justice, housing ----------------------------------------------------------


def supervision_event(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    rosh = {"low": "LOW", "medium": "MEDIUM"}.get(p.tier) or _pick(
        rng, {"HIGH": 70, "VERY_HIGH": 10, "MEDIUM": 20}
    )
    mappa = rosh in ("HIGH", "VERY_HIGH") and rng.random() < 0.3
    body = {
        "subject": w.subject(p, "probation_thames_valley"),
        "kind": _pick(
            rng,
            {"RELEASED_ON_LICENCE": 25, "COMMUNITY_ORDER_STARTED": 30, "SUSPENDED_SENTENCE_STARTED": 10}
            | {"RECALLED": 12 if p.tier == "high" else 4, "BREACH": 10, "SUPERVISION_ENDED": 15},
        ),
        "event_date": at.date(),
        "rosh_level": rosh,
        "mappa_category": "CATEGORY_2" if mappa else None,
        "mappa_level": rng.choice(["LEVEL_1", "LEVEL_2"]) if mappa else None,
        "index_offence_category": rng.choice(
            ["Violence against the person", "Drug offences", "Robbery", "Theft"]
        ),
    }
    return "probation_thames_valley", body, [(p, "SUBJECT")]


OUT_OF_COURT = ("COMMUNITY_RESOLUTION", "OUTCOME_22", "YOUTH_CAUTION", "YOUTH_CONDITIONAL_CAUTION")


def youth_outcome(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    outcome = _pick(
        rng,
        {"COMMUNITY_RESOLUTION": 20, "OUTCOME_22": 10, "YOUTH_CAUTION": 12, "YOUTH_CONDITIONAL_CAUTION": 12}
        | {"REFERRAL_ORDER": 20, "YOUTH_REHABILITATION_ORDER": 15 if p.tier == "high" else 6}
        | {"DETENTION_AND_TRAINING_ORDER": 4 if p.tier == "high" else 1, "DISCHARGE_OR_FINE": 5},
    )
    offences = {"VIOLENCE_AGAINST_THE_PERSON": 35, "POSSESSION_OF_WEAPONS": 15 if _gang(p) else 4}
    offences |= {"DRUGS": 12 if _gang(p) else 6, "ROBBERY": 6, "THEFT_AND_HANDLING": 12, "CRIMINAL_DAMAGE": 8}
    offences |= {"PUBLIC_ORDER": 8, "MOTORING": 4}
    body = {
        "subject": w.subject(p, "reading_yjs"),
        "outcome_type": outcome,
        "stage": "OUT_OF_COURT" if outcome in OUT_OF_COURT else "COURT",
        "gravity_score": min(8, rng.randint(1, 4) + (2 if p.tier == "high" else 0)),
        "offence_category": _pick(rng, offences),
        "start_date": at.date(),
    }
    return "reading_yjs", body, [(p, "SUBJECT")]


PROGRAMMES = [
    ("Youth mentoring (VRU funded)", "MENTORING"),
    ("Boxing and fitness club", "SPORT_OR_ARTS"),
    ("Music production course", "SPORT_OR_ARTS"),
    ("Detached youth work, Oxford Road", "DETACHED_YOUTH_WORK"),
    ("Hospital youth navigator", "TEACHABLE_MOMENT"),
    ("Construction skills taster", "EDUCATION_TRAINING_EMPLOYMENT"),
]


def programme_engagement(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    key = (p.person_id, "programme")
    current = w.state.get(key)
    if current is None:
        current = (*rng.choice(PROGRAMMES), "STARTED")
    else:
        status = (
            "ATTENDING" if current[2] == "STARTED" else rng.choice(["COMPLETED", "COMPLETED", "DISENGAGED"])
        )
        current = (current[0], current[1], status)
    if current[2] in ("COMPLETED", "DISENGAGED"):
        w.state.pop(key, None)
    else:
        w.state[key] = current
    body = {
        "subject": w.subject(p, "reading_yjs"),
        "programme_name": current[0],
        "programme_type": current[1],
        "status": current[2],
        "event_date": at.date(),
    }
    return "reading_yjs", body, [(p, "SUBJECT")]


def homelessness_case(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    duty = _pick(rng, {"PREVENTION": 50, "RELIEF": 35, "MAIN_DUTY": 15})
    reasons = {"FAMILY_OR_FRIENDS_NO_LONGER_WILLING": 35, "END_OF_PRIVATE_TENANCY": 25}
    reasons |= {
        "DOMESTIC_ABUSE": 30 if _has(p, "DOMESTIC_ABUSE") else 8,
        "NON_VIOLENT_RELATIONSHIP_BREAKDOWN": 12,
    }
    reasons |= {"LEAVING_INSTITUTION": 6 if p.pnc_id else 1, "OTHER": 8}
    placed = duty != "PREVENTION" and rng.random() < 0.6
    body = {
        "subject": w.subject(p, "reading_housing"),
        "case_reference": _ref(rng, "HN", at),
        "duty": duty,
        "decision_date": at.date(),
        "main_reason": _pick(rng, reasons),
        "temporary_accommodation_start": (at + timedelta(days=rng.randint(0, 14))).date() if placed else None,
        "temporary_accommodation_type": rng.choice(["BED_AND_BREAKFAST", "HOSTEL", "NIGHTLY_PAID"])
        if placed
        else None,
        "dependent_children": rng.choice([0, 0, 0, 1, 2, 3]),
    }
    return "reading_housing", body, [(p, "SUBJECT")]


def _risk(scale: float, base: float = 0.05) -> Callable[[Person], float]:
    return lambda p: base + scale * p.risk


SPECS: tuple[Spec, ...] = (
    Spec("police.crime_recorded", 22, (10, 70), _risk(6.0), _everyone, crime_recorded),
    Spec("police.crime_recorded/victim", 0, (8, 80), _risk(1.5, 0.4), _everyone, crime_recorded),
    Spec("police.stop_search", 9, (12, 45), _risk(5.0, 0.1), _everyone, stop_search),
    Spec(
        "police.missing_person",
        4,
        (10, 17),
        lambda p: 0.05 + 4.0 * _has(p, "GOING_MISSING") + p.risk,
        _everyone,
        missing_person,
    ),
    Spec("health.ed_assault_attendance", 7, (10, 70), _risk(2.5, 0.3), _everyone, ed_assault_attendance),
    Spec("education.exclusion", 9, (5, 16), _risk(4.0, 0.1), _schools, exclusion),
    Spec("education.attendance_alert", 8, (5, 16), _risk(3.0, 0.3), _schools, attendance_alert),
    Spec("education.attendance_recovered", 3, (5, 16), _risk(1.0, 0.5), _schools, attendance_recovered),
    Spec("education.placement_change", 3, (5, 16), _risk(3.0), _schools, placement_change),
    Spec("social_care.assessment_factors", 5, (0, 17), _risk(4.0, 0.1), _reading, assessment_factors),
    Spec("social_care.plan_event", 3, (0, 17), _risk(3.0, 0.1), _reading, plan_event),
    Spec(
        "social_care.missing_episode",
        3,
        (8, 17),
        lambda p: float(p.looked_after) * (1 + 3 * _has(p, "GOING_MISSING")),
        _reading,
        missing_episode,
    ),
    Spec(
        "probation.supervision_event",
        4,
        (18, 70),
        lambda p: float(p.pnc_id is not None) * p.risk,
        _everyone,
        supervision_event,
    ),
    Spec("youth_justice.outcome", 4, (10, 17), _risk(5.0, 0.02), _reading, youth_outcome),
    Spec("youth_justice.programme_engagement", 3, (10, 19), _risk(2.0, 0.2), _reading, programme_engagement),
    Spec("housing.homelessness_case", 3, (16, 70), _risk(1.5, 0.2), _reading, homelessness_case),
)
