"""Pseudonymous person profiles: which risk and protective factors were seen, when, by whom.

A profile stores one compact contribution per (event, subject): an 8-byte hash of the event id, the
subject index, the time, the partner and the factors. Everything else (first/last seen, counts,
partners, the score) is derived from those, which is what makes the operations exact:
- `apply_fact` is idempotent by (event_id, subject_index): replays and duplicates change nothing;
- `merge` (the linker joined two tokens) is a union of contributions, so it is idempotent too;
- `retract` (erasure) drops an event's contributions and recomputes, leaving no trace of it.
Counts are of distinct events: one crime naming the same person twice counts once.

Scores are ADVISORY ONLY. UK GDPR Art 22 forbids decisions with legal or similarly significant
effect based solely on automated processing; a score here only orders a practitioner's reading
list, always comes with its explanation (which factor, how often, how recent, what weight), and
never triggers an action by itself. Recency weighting: each event counts
`weight * 0.5 ** (age_days / half_life_days)`; protective factors carry negative weights; the
total is floored at 0 ("no current concern").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "HALF_LIFE_DAYS",
    "Contribution",
    "FactorStats",
    "Profile",
    "apply_fact",
    "event_key",
    "merge",
    "rescore",
    "retract",
    "score",
]

HALF_LIFE_DAYS = 180.0
_DAY = 86400.0


def event_key(event_id: str) -> int:
    """64-bit digest of an event id: enough to tell one person's events apart, 8 bytes to keep."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def parse_time(value: Any) -> datetime:
    """ISO string or datetime -> aware datetime (naive values are taken as UTC)."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Contribution:
    """What one (event, subject) added to a profile."""

    key: int
    subject_index: int
    at: int  # epoch seconds of occurred_at
    partner: str
    factors: tuple[str, ...]

    def to_list(self) -> list[Any]:
        return [f"{self.key:016x}", self.subject_index, self.at, self.partner, list(self.factors)]

    @classmethod
    def from_list(cls, v: list[Any]) -> Contribution:
        return cls(int(v[0], 16), int(v[1]), int(v[2]), str(v[3]), tuple(v[4]))


@dataclass(frozen=True)
class FactorStats:
    first_seen: datetime
    last_seen: datetime
    count: int
    partners: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "count": self.count,
            "partners": list(self.partners),
        }


@dataclass
class Profile:
    person_token: str
    contributions: dict[tuple[int, int], Contribution] = field(default_factory=dict)
    factors: dict[str, FactorStats] = field(default_factory=dict)
    score: float = 0.0
    explanation: list[str] = field(default_factory=list)
    scored_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for Faust table storage (contributions are the source of truth)."""
        return {
            "person_token": self.person_token,
            "contributions": [c.to_list() for c in self.contributions.values()],
            "score": self.score,
            "explanation": list(self.explanation),
            "scored_at": self.scored_at.isoformat() if self.scored_at else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        profile = cls(
            person_token=d["person_token"],
            score=float(d.get("score", 0.0)),
            explanation=list(d.get("explanation", [])),
            scored_at=parse_time(d["scored_at"]) if d.get("scored_at") else None,
        )
        for raw in d.get("contributions", []):
            c = Contribution.from_list(raw)
            profile.contributions[(c.key, c.subject_index)] = c
        _rebuild(profile)
        return profile

    def summary(self) -> dict[str, Any]:
        """What the API and the sink show: factors, score and explanation, no contribution hashes."""
        return {
            "person_token": self.person_token,
            "score": self.score,
            "explanation": list(self.explanation),
            "scored_at": self.scored_at.isoformat() if self.scored_at else None,
            "factors": {name: s.to_dict() for name, s in sorted(self.factors.items())},
        }


def apply_fact(profile: Profile, fact: Mapping[str, Any]) -> bool:
    """Add a `link.person` fact record; False when it was seen before or says nothing."""
    factors = tuple(sorted(set(fact.get("factors") or ())))
    if not factors:
        return False
    key = (event_key(str(fact["event_id"])), int(fact.get("subject_index", 0)))
    if key in profile.contributions:
        return False
    at = int(parse_time(fact["occurred_at"]).timestamp())
    profile.contributions[key] = Contribution(
        key[0], key[1], at, str(fact.get("source_partner", "")), factors
    )
    _rebuild(profile)
    return True


def merge(into: Profile, other: Profile) -> bool:
    """Move `other`'s contributions into `into` (the linker merged two tokens); idempotent."""
    new = {k: c for k, c in other.contributions.items() if k not in into.contributions}
    if not new:
        return False
    into.contributions.update(new)
    _rebuild(into)
    return True


def retract(profile: Profile, event_id: str) -> bool:
    """Erase everything one event contributed (erasure/rectification propagates here)."""
    key = event_key(event_id)
    gone = [k for k in profile.contributions if k[0] == key]
    for k in gone:
        del profile.contributions[k]
    if gone:
        _rebuild(profile)
    return bool(gone)


def _rebuild(profile: Profile) -> None:
    seen: dict[str, dict[int, Contribution]] = {}
    for c in profile.contributions.values():
        for f in c.factors:
            events = seen.setdefault(f, {})
            if c.key not in events or c.at < events[c.key].at:
                events[c.key] = c
    profile.factors = {
        f: FactorStats(
            first_seen=datetime.fromtimestamp(min(c.at for c in events.values()), UTC),
            last_seen=datetime.fromtimestamp(max(c.at for c in events.values()), UTC),
            count=len(events),
            partners=sorted({c.partner for c in events.values()}),
        )
        for f, events in seen.items()
    }


def score(
    profile: Profile, now: datetime, weights: Mapping[str, float], half_life_days: float = HALF_LIFE_DAYS
) -> tuple[float, list[str]]:
    """Recency-weighted score and its explanation, largest contributions first.

    e.g. "weapon_carrying x2, last 2026-03-01, weight 3.0 -> 2.7". Factors without a weight (no
    longer in the catalogue) are listed with weight 0 so nothing counts silently.
    """
    t_now = now.timestamp()
    per_factor: dict[str, dict[int, float]] = {}
    for c in profile.contributions.values():
        decay = 0.5 ** (max(0.0, t_now - c.at) / _DAY / half_life_days)
        for f in c.factors:
            events = per_factor.setdefault(f, {})
            events[c.key] = max(events.get(c.key, 0.0), decay)
    parts: list[tuple[float, str]] = []
    total = 0.0
    for f, events in per_factor.items():
        weight = weights.get(f, 0.0)
        value = weight * sum(events.values())
        total += value
        stats = profile.factors[f]
        last = stats.last_seen.date().isoformat()
        parts.append((abs(value), f"{f} x{stats.count}, last {last}, weight {weight:.1f} -> {value:.1f}"))
    parts.sort(key=lambda p: (-p[0], p[1]))
    return round(max(0.0, total), 2), [text for _, text in parts]


def rescore(
    profile: Profile, now: datetime, weights: Mapping[str, float], half_life_days: float = HALF_LIFE_DAYS
) -> float:
    """Store the score and explanation as of `now` on the profile."""
    profile.score, profile.explanation = score(profile, now, weights, half_life_days)
    profile.scored_at = now
    return profile.score
