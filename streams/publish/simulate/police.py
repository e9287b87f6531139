"""Police events: recorded crimes (with victims and suspects), stop and search, missing people."""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.publish.simulate.people import Person
from streams.publish.simulate.world import Built, World, gang_linked, has, location, pick, reference

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
    gang = gang_linked(p)
    weights = {"VIOLENCE_AND_SEXUAL_OFFENCES": 40, "POSSESSION_OF_WEAPONS": 14 if gang else 5, "ROBBERY": 6}
    weights |= {"DRUGS": 14 if gang else 8, "PUBLIC_ORDER": 8, "CRIMINAL_DAMAGE_AND_ARSON": 7}
    weights |= {"THEFT_FROM_THE_PERSON": 4, "SHOPLIFTING": 8, "BURGLARY": 4}
    category = pick(rng, weights)
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
    victim_da = any(has(v, "DOMESTIC_ABUSE") for v, role in people if role == "VICTIM")
    description = rng.choice(PLACES)
    if rng.random() < 0.02:  # free text naming someone: must never leave the bus
        description += f", near {p.given_name} {p.family_name}'s address"
    body = {
        "location": location(w.geo.near(rng, p.home), description),
        "crime_reference": reference(rng, "43", at),
        "offence_code": code,
        "offence_description": title,
        "crime_category": category,
        "knife_or_sharp_instrument": violent and rng.random() < (0.35 if gang else 0.07),
        "firearm": violent and rng.random() < (0.02 if gang else 0.002),
        "domestic_abuse": category == "VIOLENCE_AND_SEXUAL_OFFENCES"
        and rng.random() < (0.6 if victim_da else 0.15),
        "outcome": pick(
            rng, _OUTCOMES if suspect else {"UNDER_INVESTIGATION": 30, "NO_SUSPECT_IDENTIFIED": 70}
        ),
        "people": [{"role": role, "subject": w.subject(q, "thames_valley_police")} for q, role in people],
    }
    return "thames_valley_police", body, people


def _age_range(age: int) -> str:
    return "UNDER_10" if age < 10 else "AGE_10_17" if age < 18 else "AGE_18_24" if age < 25 else "AGE_25_34"


def stop_search(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    gang = gang_linked(p)
    obj = pick(
        rng, {"CONTROLLED_DRUGS": 55, "OFFENSIVE_WEAPONS": 40 if gang else 15, "STOLEN_GOODS": 10, "OTHER": 5}
    )
    legislation = {"CONTROLLED_DRUGS": "MISUSE_OF_DRUGS_ACT_S23"}.get(obj, "PACE_S1")
    if obj == "OFFENSIVE_WEAPONS" and rng.random() < 0.1:
        legislation = "CJPOA_S60"
    found = rng.random() < (0.35 if gang else 0.15)
    weapon = found and obj == "OFFENSIVE_WEAPONS"
    outcome = (
        pick(rng, {"ARREST": 50, "COMMUNITY_RESOLUTION": 25, "DRUGS_POSSESSION_WARNING": 25})
        if found
        else "NO_FURTHER_ACTION"
    )
    body = {
        "subject": w.subject(p, "thames_valley_police"),
        "location": location(w.geo.near(rng, p.home)),
        "search_reference": reference(rng, "SS", at),
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
        "location": location(p.home),
        "episode_id": reference(rng, "MP", at),
        "reported_at": at,
        "found_at": found if rng.random() < 0.95 else None,
        "risk_grade": pick(
            rng, {"LOW": 30, "MEDIUM": 50, "HIGH": 20 if gang_linked(p) else 8, "NO_APPARENT_RISK": 10}
        ),
        "exploitation_concern": has(p, "GANGS", "CHILD_CRIMINAL_EXPLOITATION", "CHILD_SEXUAL_EXPLOITATION"),
        "looked_after_child": p.looked_after,
        "found_location": location(w.geo.near(rng, p.home, stay=0.3)),
    }
    return "thames_valley_police", body, [(p, "SUBJECT")]
