"""The views API as plain functions: (reader, request values, caller) -> Reply(status, JSON body).

Access tiers follow the Thames Valley Together model (DOMAIN.md): `aggregate` (strategic: factor
catalogue, published trends, health), `area` (+ published area x factor tables), `individual`
(+ pseudonymous person profiles and the highest-scored cohort). The caller's tier and recipient
come from its verified token (`agents.web.auth`), never from anything else a client sends.
Person-level answers also need an agreement granting the caller's recipient `person_profile`.

Scores are advisory (UK GDPR Art 22): they come with their explanation and decide nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agents.web.reader import ViewsReader
from streams.identity import TIERS, Principal, Tier

__all__ = [
    "HEALTH_BELOW_INDIVIDUAL",
    "TIERS",
    "Caller",
    "Reply",
    "areas",
    "cohort",
    "factors",
    "health",
    "person",
    "trends",
]

_WEEK = re.compile(r"^\d{4}-W\d{2}$")
# A recipient's person token: "<key id>.<26 base32>" (streams/linkage/view_tokens.py).
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{1,64}$")
# What /api/health tells tiers below individual: nothing a suppressed table hides (no exact counts
# of facts, profiles or dead letters, no time of the latest fact).
HEALTH_BELOW_INDIVIDUAL = frozenset({"status", "weeks", "last_emit_at"})


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


@dataclass(frozen=True)
class Caller:
    """A verified caller with a recipient and a tier; `person_view`: an agreement grants its
    recipient the person view."""

    principal: Principal
    person_view: bool = False

    @property
    def tier(self) -> Tier:
        return self.principal.tier or "aggregate"

    def _stamp(self) -> dict[str, Any]:
        return {"tier": self.tier, "recipient": self.principal.recipient}


def _denied(caller: Caller, needed: Tier) -> Reply | None:
    if caller.principal.reaches(needed):
        return None
    return Reply(403, {"error": f"needs tier {needed}", **caller._stamp()})


def _persons_denied(caller: Caller) -> Reply | None:
    denied = _denied(caller, "individual")
    if denied or caller.person_view:
        return denied
    recipient = caller.principal.recipient
    return Reply(403, {"error": f"no agreement grants {recipient} the person view", **caller._stamp()})


def person(reader: ViewsReader, token: str, caller: Caller) -> Reply:
    denied = _persons_denied(caller)
    if denied:
        return denied
    if not _TOKEN.match(token):
        return Reply(400, {"error": "not a person token"})
    # Every recipient's view shares one table: a token of another recipient's view is unknown here.
    profile = reader.person(token, caller.principal.recipient)
    if profile is None:
        return Reply(404, {"error": "unknown person token"})
    return Reply(200, {**caller._stamp(), "advisory": True, **profile})


def areas(reader: ViewsReader, week: str | None, caller: Caller) -> Reply:
    denied = _denied(caller, "area")
    if denied:
        return denied
    if week is not None and not _WEEK.match(week):
        return Reply(400, {"error": "week must look like 2026-W11"})
    return Reply(200, {**caller._stamp(), **reader.areas(week)})


def factors(reader: ViewsReader, caller: Caller) -> Reply:
    return Reply(200, {**caller._stamp(), "factors": reader.factors()})


def trends(reader: ViewsReader, caller: Caller) -> Reply:
    series = {f["name"]: [[w, v] for w, v in reader.trend(f["name"])] for f in reader.factors()}
    return Reply(200, {**caller._stamp(), "trends": series})


def cohort(reader: ViewsReader, caller: Caller, n: str | None = None) -> Reply:
    denied = _persons_denied(caller)
    if denied:
        return denied
    try:
        size = min(max(int(n or 20), 1), 100)
    except ValueError:
        return Reply(400, {"error": "n must be an integer"})
    return Reply(
        200,
        {**caller._stamp(), "advisory": True, "cohort": reader.top_cohort(size, caller.principal.recipient)},
    )


def health(reader: ViewsReader, caller: Caller) -> Reply:
    state = reader.health(caller.principal.recipient)
    if not caller.principal.reaches("individual"):
        state = {k: v for k, v in state.items() if k in HEALTH_BELOW_INDIVIDUAL}
    return Reply(200, {**caller._stamp(), **state})
