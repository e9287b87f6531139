"""Pseudonymous person profiles: which risk and protective factors were seen, when, by whom.

A profile stores one compact contribution per (event, subject): an 8-byte hash of the event id, the
subject index, the time, the partner and the factors. Everything else (first/last seen, counts,
partners, the score) is derived from those, which is what makes the operations exact:
- `apply_fact` is idempotent by (event_id, subject_index): replays and duplicates change nothing;
- `merge` (the linker joined two tokens) is a union of contributions, so it is idempotent too;
- `retract` (erasure) drops an event's contributions and recomputes, leaving no trace of it.
Counts are of distinct events: one crime naming the same person twice counts once.

Bounded: a profile keeps at most `MAX_CONTRIBUTIONS`, the newest by (occurred_at, event key,
subject). Adding one more forgets the oldest and raises the profile's `horizon` to it; a fact at or
below the horizon is ignored, so a replay of a forgotten event cannot come back, and what a profile
holds is exactly the newest `MAX_CONTRIBUTIONS` of everything it was given, in any order, however
often, however split across merged tokens (erasures aside: they only remove). Forgetting is always
safe for erasure and retention (nothing forgotten can be shown), and it drops the oldest evidence,
the least weighted in the score. Without it, one person's profile, its changelog value and every
rewrite of it grew with each new event for that person (benchmarks/memory.py).

In memory and on the changelog, contributions are one compact string (`_encode`), about 80 bytes
each instead of ~490 for a JSON list of lists; `from_dict` reads both forms.

Scores are ADVISORY ONLY. UK GDPR Art 22 forbids decisions with legal or similarly significant
effect based solely on automated processing; a score here only orders a practitioner's reading
list, always comes with its explanation (which factor, how often, how recent, what weight), and
never triggers an action by itself. Recency weighting: each event counts
`weight * 0.5 ** (age_days / half_life_days)`; protective factors carry negative weights; the
total is floored at 0 ("no current concern").
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "HALF_LIFE_DAYS",
    "MAX_CONTRIBUTIONS",
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
MAX_CONTRIBUTIONS = 512  # per profile: ~40 KB in memory at most (a year of weekly events is 52)
_DAY = 86400.0

Rank = tuple[int, int, int]  # (at, key, subject_index): contributions are forgotten lowest rank first


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

    @property
    def rank(self) -> Rank:
        return (self.at, self.key, self.subject_index)

    def to_list(self) -> list[Any]:
        return [f"{self.key:016x}", self.subject_index, self.at, self.partner, list(self.factors)]

    @classmethod
    def from_list(cls, v: list[Any]) -> Contribution:
        return cls(int(v[0], 16), int(v[1]), int(v[2]), str(v[3]), tuple(v[4]))

    def encode(self) -> str:
        """`<key hex> <subject> <at> <partner> <factor>,<factor>` (names %-escaped: no separator inside)."""
        factors = ",".join(_escape(f) for f in self.factors)
        return f"{self.key:016x} {self.subject_index} {self.at} {_escape(self.partner)} {factors}"

    @classmethod
    def decode(cls, text: str) -> Contribution:
        key, subject, at, partner, factors = text.split(" ")
        names = tuple(_unescape(f) for f in factors.split(",")) if factors else ()
        return cls(int(key, 16), int(subject), int(at), _unescape(partner), names)


@lru_cache(maxsize=4096)
def _escape(name: str) -> str:
    return quote(name, safe="")


@lru_cache(maxsize=4096)
def _unescape(text: str) -> str:
    return unquote(text)  # cached: every profile shares one string per partner and factor name


def _encode(contributions: Iterable[Contribution]) -> str:
    return ";".join(c.encode() for c in contributions)


def _decode(raw: Any) -> list[Contribution]:
    """Contributions from `to_dict()`: the compact string, or the JSON list of lists written before it."""
    if isinstance(raw, str):
        return [Contribution.decode(item) for item in raw.split(";")] if raw else []
    return [Contribution.from_list(v) for v in raw or ()]


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
    horizon: Rank | None = None  # the highest rank forgotten: nothing at or below it is kept or taken
    # The recipient whose person view this is (the token is in its domain); None: nobody's view,
    # so no caller is ever shown it (`visible_to`).
    recipient: str | None = None

    def visible_to(self, recipient: str | None) -> bool:
        """Whether `recipient`'s caller may see this profile: only the view's own recipient may."""
        return recipient is not None and self.recipient == recipient

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for Faust table storage (contributions are the source of truth)."""
        h = self.horizon
        return {
            "person_token": self.person_token,
            "contributions": _encode(self.contributions.values()),
            "horizon": [h[0], f"{h[1]:016x}", h[2]] if h is not None else None,
            "score": self.score,
            "explanation": list(self.explanation),
            "scored_at": self.scored_at.isoformat() if self.scored_at else None,
            "recipient": self.recipient,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        h = d.get("horizon")
        profile = cls(
            person_token=d["person_token"],
            score=float(d.get("score", 0.0)),
            explanation=list(d.get("explanation", [])),
            scored_at=parse_time(d["scored_at"]) if d.get("scored_at") else None,
            horizon=(int(h[0]), int(h[1], 16), int(h[2])) if h else None,
            recipient=d.get("recipient"),
        )
        for c in _decode(d.get("contributions")):
            profile.contributions[(c.key, c.subject_index)] = c
        _rebuild(profile)
        return profile

    @property
    def truncated_at(self) -> datetime | None:
        """Set once the profile keeps only its newest `MAX_CONTRIBUTIONS`: events that occurred
        at or before this time may be missing from its counts. None: every event is counted."""
        return datetime.fromtimestamp(self.horizon[0], UTC) if self.horizon is not None else None

    def summary(self) -> dict[str, Any]:
        """What the API and the sink show: factors, score and explanation, no contribution hashes."""
        truncated = self.truncated_at
        return {
            "person_token": self.person_token,
            "score": self.score,
            "explanation": list(self.explanation),
            "scored_at": self.scored_at.isoformat() if self.scored_at else None,
            "truncated_at": truncated.isoformat() if truncated else None,
            "factors": {name: s.to_dict() for name, s in sorted(self.factors.items())},
        }


def apply_fact(profile: Profile, fact: Mapping[str, Any], cap: int = MAX_CONTRIBUTIONS) -> bool:
    """Add a `link.person` fact record; False when it was seen before, is forgotten or says nothing.

    True means the profile changed: a contribution was added, or (the profile being full and the
    fact older than everything in it) the horizon rose to the fact.
    """
    factors = tuple(sorted(set(fact.get("factors") or ())))
    if not factors:
        return False
    recipient = fact.get("recipient")
    if profile.recipient is None and recipient:
        profile.recipient = str(recipient)
    key = (event_key(str(fact["event_id"])), int(fact.get("subject_index", 0)))
    if key in profile.contributions:
        return False
    at = int(parse_time(fact["occurred_at"]).timestamp())
    c = Contribution(key[0], key[1], at, str(fact.get("source_partner", "")), factors)
    if profile.horizon is not None and c.rank <= profile.horizon:
        return False  # forgotten, or older than all the profile keeps: a replay brings nothing back
    profile.contributions[key] = c
    _forget(profile, cap)
    _rebuild(profile)
    return True


def merge(into: Profile, other: Profile, cap: int = MAX_CONTRIBUTIONS) -> bool:
    """Move `other`'s contributions into `into` (the linker merged two tokens); idempotent.

    The merged profile forgets what either side forgot (the higher horizon): neither side's
    forgotten events can come back through the other, and the result is the newest `cap` of both.
    """
    horizon = _higher(into.horizon, other.horizon)
    if into.recipient is None and other.recipient is not None:
        into.recipient = other.recipient
    new = {
        k: c
        for k, c in other.contributions.items()
        if k not in into.contributions and (horizon is None or c.rank > horizon)
    }
    stale = []
    if horizon is not None and horizon != into.horizon:
        stale = [k for k, c in into.contributions.items() if c.rank <= horizon]
    if not new and not stale and horizon == into.horizon:
        return False
    for k in stale:
        del into.contributions[k]
    into.horizon = horizon
    into.contributions.update(new)
    _forget(into, cap)
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


def _higher(a: Rank | None, b: Rank | None) -> Rank | None:
    return b if a is None else a if b is None else max(a, b)


def _forget(profile: Profile, cap: int) -> None:
    """Keep the `cap` highest-ranked contributions; the highest rank dropped becomes the horizon."""
    excess = len(profile.contributions) - max(cap, 1)
    if excess <= 0:
        return
    oldest = heapq.nsmallest(excess, profile.contributions.items(), key=lambda kc: kc[1].rank)
    for k, _ in oldest:
        del profile.contributions[k]
    top = oldest[-1][1].rank
    if profile.horizon is None or top > profile.horizon:
        profile.horizon = top


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
