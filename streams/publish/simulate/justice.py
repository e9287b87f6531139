"""Probation supervision and youth justice outcomes and programmes."""

from __future__ import annotations

from datetime import datetime

from streams.publish.simulate.people import Person
from streams.publish.simulate.world import Built, World, gang_linked, pick


def supervision_event(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    rosh = {"low": "LOW", "medium": "MEDIUM"}.get(p.tier) or pick(
        rng, {"HIGH": 70, "VERY_HIGH": 10, "MEDIUM": 20}
    )
    mappa = rosh in ("HIGH", "VERY_HIGH") and rng.random() < 0.3
    body = {
        "subject": w.subject(p, "probation_thames_valley"),
        "kind": pick(
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
    outcome = pick(
        rng,
        {"COMMUNITY_RESOLUTION": 20, "OUTCOME_22": 10, "YOUTH_CAUTION": 12, "YOUTH_CONDITIONAL_CAUTION": 12}
        | {"REFERRAL_ORDER": 20, "YOUTH_REHABILITATION_ORDER": 15 if p.tier == "high" else 6}
        | {"DETENTION_AND_TRAINING_ORDER": 4 if p.tier == "high" else 1, "DISCHARGE_OR_FINE": 5},
    )
    offences = {"VIOLENCE_AGAINST_THE_PERSON": 35, "POSSESSION_OF_WEAPONS": 15 if gang_linked(p) else 4}
    offences |= {
        "DRUGS": 12 if gang_linked(p) else 6,
        "ROBBERY": 6,
        "THEFT_AND_HANDLING": 12,
        "CRIMINAL_DAMAGE": 8,
    }
    offences |= {"PUBLIC_ORDER": 8, "MOTORING": 4}
    body = {
        "subject": w.subject(p, "reading_yjs"),
        "outcome_type": outcome,
        "stage": "OUT_OF_COURT" if outcome in OUT_OF_COURT else "COURT",
        "gravity_score": min(8, rng.randint(1, 4) + (2 if p.tier == "high" else 0)),
        "offence_category": pick(rng, offences),
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
