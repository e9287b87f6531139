"""Children's social care events: assessments, plans, missing episodes of looked-after children."""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.publish.simulate.people import Person
from streams.publish.simulate.world import Built, World, pick, reference

CSC = "reading_childrens_services"


def assessment_factors(w: World, p: Person, at: datetime) -> Built:
    rng = w.rng
    factors = [f for f in p.factors if rng.random() < 0.85] or [
        rng.choice(["NEGLECT", "DOMESTIC_ABUSE", "OTHER"])
    ]
    outcome = pick(
        rng, {"CHILD_IN_NEED": 40, "EARLY_HELP": 25, "NO_FURTHER_ACTION": 20, "CHILD_PROTECTION_ENQUIRY": 15}
    )
    body = {
        "subject": w.subject(p, CSC),
        "assessment_id": reference(rng, "AS", at),
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
        open_plan = (reference(rng, "PL", at), plan_type)
        w.state[key] = open_plan
        action, end_reason = "STARTED", None
    else:
        action = "ENDED"
        end_reason = pick(
            rng, {"POSITIVE_OUTCOME": 45, "STEPPED_DOWN": 25, "ESCALATED": 10, "MOVED_AWAY": 10, "OTHER": 10}
        )
    plan_id, plan_type = open_plan
    body = {
        "subject": w.subject(p, CSC),
        "plan_id": plan_id,
        "plan_type": plan_type,
        "action": action,
        "event_date": at.date(),
        "abuse_category": pick(
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
        "episode_id": reference(rng, "ME", at),
        "episode_type": "MISSING" if rng.random() < 0.7 else "AWAY_WITHOUT_AUTHORISATION",
        "started_at": at,
        "ended_at": at + timedelta(hours=rng.uniform(3, 96)) if returned else None,
        "return_interview": pick(
            rng, {"OFFERED_AND_ACCEPTED": 55, "OFFERED_AND_DECLINED": 30, "NOT_OFFERED": 10}
        )
        if returned
        else "PENDING",
    }
    return CSC, body, [(p, "SUBJECT")]
