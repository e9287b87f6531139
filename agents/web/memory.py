"""A `ViewsReader` over in-memory `Profile`s and `AreaCounts`: for tests, demos and as a reference.

Thread-safe (tests feed it from one thread while aiohttp serves from another). Published tables and
trends are cached per change counter, so polling dashboards do not re-run suppression.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from streams.views.area_counts import AreaCounts, Level
from streams.views.factors import FactorDef
from streams.views.profiles import Profile, apply_fact, rescore


class MemoryViewsReader:
    def __init__(
        self,
        factors: Mapping[str, FactorDef],
        threshold: int = 10,
        round_to: int = 0,
        level: Level = "district",
        half_life_days: float = 180.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._factors = {n: f for n, f in factors.items() if not f.requires_linked_adult}
        self._weights = {n: f.signed_weight for n, f in factors.items()}
        self.threshold, self.round_to, self.half_life_days = threshold, round_to, half_life_days
        self._clock = clock
        self.profiles: dict[str, Profile] = {}
        self.counts = AreaCounts(level)
        self._lock = threading.Lock()
        self._version = 0
        self._cache: dict[tuple[str, Any], Any] = {}
        self._facts = 0
        self._last_fact: str | None = None

    def apply(self, fact: Mapping[str, Any]) -> bool:
        """Apply a `link.person` fact record to the profile and the area counts."""
        with self._lock:
            changed = self.counts.apply(fact)
            token = fact.get("person_token")
            if token:
                profile = self.profiles.setdefault(token, Profile(token))
                if apply_fact(profile, fact):
                    rescore(profile, self._clock(), self._weights, self.half_life_days)
                    changed = True
            self._facts += 1
            self._last_fact = str(fact.get("occurred_at"))
            if changed:
                self._version += 1
                self._cache.clear()
            return changed

    def _cached(self, key: tuple[str, Any], make: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def person(self, token: str, recipient: str | None) -> dict[str, Any] | None:
        with self._lock:
            profile = self.profiles.get(token)
            return profile.summary() if profile and profile.visible_to(recipient) else None

    def areas(self, week: str | None) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            weeks = self.counts.weeks()
            chosen = week or (weeks[-1] if weeks else None)
            cols = list(self._factors)
            if chosen is None:
                table = {
                    "rows": [],
                    "cols": cols,
                    "cells": [],
                    "row_totals": [],
                    "col_totals": [0] * len(cols),
                }
                return {"week": None, "weeks": weeks, **table, "total": 0, "threshold": self.threshold}
            pub = self.counts.published(chosen, self.threshold, self.round_to, factors=cols)
            return {"week": chosen, "weeks": weeks, **pub.to_dict()}

        return dict(self._cached(("areas", week), make))

    def factors(self) -> list[dict[str, Any]]:
        return [
            {"name": n, **f.model_dump(exclude={"requires_linked_adult"})} for n, f in self._factors.items()
        ]

    def top_cohort(self, n: int, recipient: str | None) -> list[dict[str, Any]]:
        with self._lock:
            mine = (p for p in self.profiles.values() if p.visible_to(recipient))
            ranked = sorted(mine, key=lambda p: (-p.score, p.person_token))[:n]
            return [
                {"person_token": p.person_token, "score": p.score, "explanation": p.explanation[:3]}
                for p in ranked
                if p.score > 0
            ]

    def health(self, recipient: str | None) -> dict[str, Any]:
        with self._lock:
            return {
                "status": "ok",
                "facts_applied": self._facts,
                "profiles": sum(p.visible_to(recipient) for p in self.profiles.values()),
                "weeks": len(self.counts.weeks()),
                "last_fact_at": self._last_fact,
            }

    def trend(self, factor: str) -> list[tuple[str, int | None]]:
        trends = self._cached(("trends", None), lambda: self.counts.trends(self.threshold, self.round_to))
        weeks = self._cached(("weeks", None), self.counts.weeks)
        return list(trends.get(factor, [(w, 0) for w in weeks]))
