"""Counts per (area, ISO week, factor) of distinct events, and their published (suppressed) form.

Each cell keeps the 8-byte keys of the events that evidenced it, so a replayed or duplicated fact
(same event id and subject) changes nothing, two people in one event count once, and erasure of an
event is exact. A cell is a sorted `array("Q")` of those keys: 8 bytes an event, where a set of
Python ints took ~70 (the keys are what grows with every event until retention removes it).
Raw counts never leave this module except through `published`, which runs
`streams.privacy.disclosure.suppress` (control 9: small-number suppression on every aggregate).

Weeks are ISO weeks of `occurred_at` in UTC ("2026-W11"). Facts without an area at the chosen level
are counted under the row "unknown", so the totals still include them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from streams.privacy.disclosure import SuppressedTable, suppress
from streams.views.profiles import event_key, parse_time

__all__ = [
    "UNKNOWN_AREA",
    "AreaCounts",
    "EventKeys",
    "Level",
    "cells_of",
    "event_keys",
    "has_key",
    "iso_week",
]

Level = Literal["district", "lsoa"]
UNKNOWN_AREA = "unknown"

EventKeys = array  # array("Q"): sorted, distinct 64-bit event keys (`streams.views.profiles.event_key`)


def event_keys(keys: Iterable[int] = ()) -> EventKeys:
    return array("Q", sorted(set(keys)))


def has_key(keys: EventKeys, key: int) -> bool:
    i = bisect_left(keys, key)
    return i < len(keys) and keys[i] == key


def _add(keys: EventKeys, key: int) -> bool:
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        return False
    keys.insert(i, key)
    return True


def _discard(keys: EventKeys, key: int) -> bool:
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]
        return True
    return False


def iso_week(when: datetime | str) -> str:
    """ISO 8601 week of a time, in UTC: 2026-03-12 -> "2026-W11"."""
    year, week, _ = parse_time(when).astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def cells_of(fact: Mapping[str, Any], level: Level = "district") -> list[tuple[str, str, str]]:
    """(area, week, factor) cells a `link.person`/`link.identifiers` fact record counts in."""
    factors = fact.get("factors") or ()
    if not factors:
        return []
    area = (fact.get("area") or {}).get(level) or UNKNOWN_AREA
    week = iso_week(fact["occurred_at"])
    return [(area, week, f) for f in sorted(set(factors))]


class AreaCounts:
    """week -> area -> factor -> keys of the distinct events counted there."""

    def __init__(self, level: Level = "district") -> None:
        self.level: Level = level
        self._weeks: dict[str, dict[str, dict[str, EventKeys]]] = {}

    def apply(self, fact: Mapping[str, Any]) -> bool:
        """Count a fact; False when every cell already held its event (a replay or duplicate)."""
        cells = cells_of(fact, self.level)
        if not cells:
            return False
        key = event_key(str(fact["event_id"]))
        changed = False
        for area, week, factor in cells:
            areas = self._weeks.setdefault(week, {}).setdefault(area, {})
            events = areas.get(factor)
            if events is None:
                events = areas[factor] = event_keys()
            changed = _add(events, key) or changed
        return changed

    def retract(self, event_id: str) -> bool:
        """Remove an event from every cell (erasure); empty cells, areas and weeks disappear."""
        key = event_key(event_id)
        changed = False
        for week, areas in list(self._weeks.items()):
            for area, factors in list(areas.items()):
                for factor, events in list(factors.items()):
                    if _discard(events, key):
                        changed = True
                        if not events:
                            del factors[factor]
                if not factors:
                    del areas[area]
            if not areas:
                del self._weeks[week]
        return changed

    def prune(self, before_week: str) -> int:
        """Drop weeks older than `before_week` (retention); returns how many went."""
        old = [w for w in self._weeks if w < before_week]
        for w in old:
            del self._weeks[w]
        return len(old)

    def weeks(self) -> list[str]:
        return sorted(self._weeks)

    def table(self, week: str) -> dict[str, dict[str, int]]:
        """Raw counts for one week: for suppression and tests only, never for publication."""
        return {
            area: {f: len(events) for f, events in factors.items()}
            for area, factors in self._weeks.get(week, {}).items()
        }

    def published(
        self, week: str, threshold: int, round_to: int = 0, factors: Sequence[str] | None = None
    ) -> SuppressedTable:
        """The one form of a week's counts that may leave the bus."""
        table = self.table(week)
        cols = list(factors) if factors is not None else sorted({f for r in table.values() for f in r})
        return suppress(table, threshold, round_to, rows=sorted(table), cols=cols)

    def trends(self, threshold: int, round_to: int = 0) -> dict[str, list[tuple[str, int | None]]]:
        """Published weekly totals per factor (None: suppressed), taken from the weekly tables."""
        weeks = self.weeks()
        out: dict[str, list[tuple[str, int | None]]] = {}
        for i, week in enumerate(weeks):
            pub = self.published(week, threshold, round_to)
            for factor, total in zip(pub.cols, pub.col_totals, strict=True):
                out.setdefault(factor, [(w, 0) for w in weeks[:i]]).append((week, total))
            for series in out.values():
                if len(series) == i:
                    series.append((week, 0))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "weeks": {
                w: {
                    a: {f: sorted(f"{k:016x}" for k in ev) for f, ev in fs.items()} for a, fs in areas.items()
                }
                for w, areas in self._weeks.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AreaCounts:
        counts = cls(d.get("level", "district"))
        for w, areas in d.get("weeks", {}).items():
            for a, fs in areas.items():
                for f, keys in fs.items():
                    counts._weeks.setdefault(w, {}).setdefault(a, {})[f] = event_keys(
                        int(k, 16) for k in keys
                    )
        return counts

    @classmethod
    def of(cls, facts: Iterable[Mapping[str, Any]], level: Level = "district") -> AreaCounts:
        counts = cls(level)
        for fact in facts:
            counts.apply(fact)
        return counts
