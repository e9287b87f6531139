"""The views API as plain functions: (reader, request values, tier) -> Reply(status, JSON body).

Access tiers follow the Thames Valley Together model (DOMAIN.md): `aggregate` (strategic: factor
catalogue, published trends, health), `area` (+ published area x factor tables), `individual`
(+ pseudonymous person profiles and the highest-scored cohort; named roles only). The tier comes
from the `X-SharingBus-Tier` request header, which the authenticating reverse proxy sets after
sign-in and strips from client requests; the worker's web port must therefore only be reachable
through that proxy. A missing or unknown tier is treated as `aggregate` (fail closed).

Scores are advisory (UK GDPR Art 22): they come with their explanation and decide nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agents.web.reader import ViewsReader

__all__ = [
    "TIERS",
    "TIER_HEADER",
    "Reply",
    "areas",
    "cohort",
    "factors",
    "health",
    "person",
    "tier_of",
    "trends",
]

TIER_HEADER = "X-SharingBus-Tier"
TIERS = ("aggregate", "area", "individual")
_WEEK = re.compile(r"^\d{4}-W\d{2}$")
_TOKEN = re.compile(r"^p\.[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


def tier_of(header: str | None) -> str:
    value = (header or "").strip().lower()
    return value if value in TIERS else "aggregate"


def _denied(tier: str, needed: str) -> Reply | None:
    if TIERS.index(tier) >= TIERS.index(needed):
        return None
    return Reply(403, {"error": f"needs tier {needed}", "tier": tier})


def person(reader: ViewsReader, token: str, tier: str) -> Reply:
    denied = _denied(tier, "individual")
    if denied:
        return denied
    if not _TOKEN.match(token):
        return Reply(400, {"error": "not a person token"})
    profile = reader.person(token)
    if profile is None:
        return Reply(404, {"error": "unknown person token"})
    return Reply(200, {"tier": tier, "advisory": True, **profile})


def areas(reader: ViewsReader, week: str | None, tier: str) -> Reply:
    denied = _denied(tier, "area")
    if denied:
        return denied
    if week is not None and not _WEEK.match(week):
        return Reply(400, {"error": "week must look like 2026-W11"})
    return Reply(200, {"tier": tier, **reader.areas(week)})


def factors(reader: ViewsReader, tier: str) -> Reply:
    return Reply(200, {"tier": tier, "factors": reader.factors()})


def trends(reader: ViewsReader, tier: str) -> Reply:
    series = {f["name"]: [[w, v] for w, v in reader.trend(f["name"])] for f in reader.factors()}
    return Reply(200, {"tier": tier, "trends": series})


def cohort(reader: ViewsReader, tier: str, n: str | None = None) -> Reply:
    denied = _denied(tier, "individual")
    if denied:
        return denied
    try:
        size = min(max(int(n or 20), 1), 100)
    except ValueError:
        return Reply(400, {"error": "n must be an integer"})
    return Reply(200, {"tier": tier, "advisory": True, "cohort": reader.top_cohort(size)})


def health(reader: ViewsReader, tier: str) -> Reply:
    return Reply(200, {"tier": tier, **reader.health()})
