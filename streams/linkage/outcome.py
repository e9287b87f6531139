"""What linking one record produced: its person, merges, the evidence of each link, reviews."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Merge", "Outcome", "Review", "review_id"]


@dataclass(frozen=True, slots=True)
class Merge:
    """Cluster `from_` was merged into `into`: views move the old profile to the new token."""

    from_: str
    into: str


def review_id(a: str, b: str) -> str:
    """Stable id of the question "are person tokens a and b one person?" (order does not matter)."""
    low, high = sorted((a, b))
    return "r." + base64.b32encode(hashlib.sha256(f"{low}|{high}".encode()).digest())[:16].decode().lower()


@dataclass(frozen=True, slots=True)
class Review:
    """A pair the model is unsure of: not linked, queued for a person to decide."""

    id: str
    a: str  # the record's person token
    b: str  # the candidate's person token
    weight: float
    explanation: dict[str, Any]


@dataclass(slots=True)
class Outcome:
    """What one record did: its person, the merges, why it linked (one entry per link), reviews."""

    person: str | None
    merges: list[Merge] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
