"""Counts per (area, ISO week, factor) of distinct PEOPLE, and their published (suppressed) form.

The unit is a person, not an event: one person with ten recorded incidents is one person in a
cell, so an event count can never make a single person look like a group of ten (the "dominance"
problem of event counts, docs/disclosure-control.md). A person is a linked person token; a subject
the linker could not link (no token) counts as its own person, by (event id, subject index).

Each cell keeps (event key, person key) pairs, so a replayed or duplicated fact changes nothing, an
erased event leaves exactly (and only that person's other events keep them counted), and the count
is the number of distinct person keys. A cell is two aligned `array("Q")`s sorted by (event, person):
16 bytes an entry, where a set of tuples of Python ints took well over 100.
Raw counts never leave this module except through `published` (tests, the in-memory reader) or the
frozen snapshots of `streams.views.snapshots`, both of which run `streams.privacy.disclosure.suppress`.

Weeks are ISO weeks of `occurred_at` in UTC ("2026-W11"), unless the week was already frozen and
published: then the fact counts in the earliest week not yet frozen (`place`). Facts without an
area at the chosen level are counted under the row "unknown", so the totals still include them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from streams.privacy.disclosure import SuppressedTable, suppress
from streams.views.periods import next_week
from streams.views.profiles import event_key, parse_time

__all__ = [
    "UNKNOWN_AREA",
    "AreaCounts",
    "Cell",
    "Level",
    "cells_of",
    "iso_week",
    "person_key",
]

Level = Literal["district", "lsoa"]
UNKNOWN_AREA = "unknown"
_NEW_FORMAT = "p"  # prefix of a serialised cell of (event, person) pairs; without it: event keys only


class Cell:
    """The (event key, person key) pairs counted in one (area, week, factor) cell."""

    __slots__ = ("events", "persons")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        ordered = sorted(set(pairs))
        self.events = array("Q", (e for e, _ in ordered))
        self.persons = array("Q", (p for _, p in ordered))

    def __len__(self) -> int:
        return len(self.events)

    def people(self) -> int:
        return len(set(self.persons))

    def pairs(self) -> Iterable[tuple[int, int]]:
        return zip(self.events, self.persons, strict=True)

    def has_event(self, event: int) -> bool:
        i = bisect_left(self.events, event)
        return i < len(self.events) and self.events[i] == event

    def add(self, event: int, person: int) -> bool:
        lo, hi = bisect_left(self.events, event), bisect_right(self.events, event)
        i = lo + bisect_left(self.persons[lo:hi], person)
        if i < hi and self.persons[i] == person:
            return False
        self.events.insert(i, event)
        self.persons.insert(i, person)
        return True

    def discard_event(self, event: int) -> bool:
        lo, hi = bisect_left(self.events, event), bisect_right(self.events, event)
        if lo == hi:
            return False
        del self.events[lo:hi]
        del self.persons[lo:hi]
        return True

    def to_hex(self) -> str:
        return _NEW_FORMAT + "".join(f"{e:016x}{p:016x}" for e, p in self.pairs())

    @classmethod
    def from_hex(cls, text: str | Iterable[str]) -> Cell:
        """Both serialised forms; a cell written before people were counted holds event keys only,
        and each of its events counts as one person (the most cautious reading: more people never
        makes a small count look smaller than it is, and such rows age out with retention)."""
        if isinstance(text, str) and text.startswith(_NEW_FORMAT):
            body = text[1:]
            hexes = (body[i : i + 32] for i in range(0, len(body), 32))
            return cls((int(h[:16], 16), int(h[16:], 16)) for h in hexes)
        if isinstance(text, str):
            text = [text[i : i + 16] for i in range(0, len(text), 16)]
        return cls((int(k, 16), int(k, 16)) for k in text)


def person_key(fact: Mapping[str, Any]) -> int:
    """Who a fact is about: its person token, else (for an unlinked subject) its own event subject."""
    token = fact.get("person_token")
    if token:
        return event_key(f"person:{token}")
    return event_key(f"subject:{fact['event_id']}#{int(fact.get('subject_index') or 0)}")


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
    """week -> area -> factor -> the (event, person) pairs counted there."""

    def __init__(self, level: Level = "district") -> None:
        self.level: Level = level
        self._weeks: dict[str, dict[str, dict[str, Cell]]] = {}

    def _holds(self, area: str, week: str, factor: str, event: int) -> bool:
        cell = self._weeks.get(week, {}).get(area, {}).get(factor)
        return cell is not None and cell.has_event(event)

    def place(self, fact: Mapping[str, Any], frozen: Container[str] = ()) -> list[tuple[str, str, str]]:
        """Count a fact; returns the cells that changed ([] for a replay, a duplicate or no factor).

        A fact whose week is in `frozen` (already published, never to change) counts in the earliest
        later week that is not; a replay finds it wherever it was first counted, so it still counts
        once (weeks are only ever added to `frozen`, so that place lies between the two).
        """
        cells = cells_of(fact, self.level)
        if not cells:
            return []
        event, person = event_key(str(fact["event_id"])), person_key(fact)
        occurred = cells[0][1]
        week = occurred
        while week in frozen:
            week = next_week(week)
        changed = []
        for area, _, factor in cells:
            if week != occurred and self._placed_earlier(area, occurred, week, factor, event):
                continue
            areas = self._weeks.setdefault(week, {}).setdefault(area, {})
            cell = areas.get(factor)
            if cell is None:
                cell = areas[factor] = Cell()
            if cell.add(event, person):
                changed.append((area, week, factor))
        return changed

    def _placed_earlier(self, area: str, first: str, last: str, factor: str, event: int) -> bool:
        return any(self._holds(area, w, factor, event) for w in self._weeks if first <= w < last)

    def apply(self, fact: Mapping[str, Any]) -> bool:
        """Count a fact in its own week; False when nothing changed (a replay or duplicate)."""
        return bool(self.place(fact))

    def retract(self, event_id: str) -> bool:
        """Remove an event from every cell (erasure); empty cells, areas and weeks disappear."""
        key = event_key(event_id)
        changed = False
        for week, areas in list(self._weeks.items()):
            for area, factors in list(areas.items()):
                for factor, cell in list(factors.items()):
                    if cell.discard_event(key):
                        changed = True
                        if not cell:
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
        """Distinct people per cell for one week: for suppression and tests only, never published."""
        return {
            area: {f: cell.people() for f, cell in factors.items()}
            for area, factors in self._weeks.get(week, {}).items()
        }

    def published(
        self, week: str, threshold: int, round_to: int = 0, factors: Sequence[str] | None = None
    ) -> SuppressedTable:
        """A suppressed form of a week's counts (the in-memory reader and tests)."""
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
                w: {a: {f: cell.to_hex() for f, cell in fs.items()} for a, fs in areas.items()}
                for w, areas in self._weeks.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AreaCounts:
        counts = cls(d.get("level", "district"))
        for w, areas in d.get("weeks", {}).items():
            for a, fs in areas.items():
                for f, keys in fs.items():
                    counts._weeks.setdefault(w, {}).setdefault(a, {})[f] = Cell.from_hex(keys)
        return counts

    @classmethod
    def of(cls, facts: Iterable[Mapping[str, Any]], level: Level = "district") -> AreaCounts:
        counts = cls(level)
        for fact in facts:
            counts.apply(fact)
        return counts
