"""A `ViewsReader` over the views agent's live state: the Faust tables of this worker, in memory.

Called on the event loop by the web handlers, so every answer comes from memory and the expensive
ones (suppressing a week, trends, the cohort ranking) are cached until the state changes. The agent
bumps `LiveViews.profiles_version` / `areas_version` after each batch; a poll between batches gets
the cached answer.

Area tables and trends come only from the frozen snapshots of closed weeks
(`streams.views.snapshots`), for every tier: the live counts are never served, so nothing a caller
polls can be differenced. The topic and the PostgreSQL sink carry the same snapshots.

Each worker holds only its own partitions of the person tables and, unless it owns the single
area-facts partition, no area counts at all: `agents.views` routes `/api/persons/{token}` and the area
endpoints to the worker that owns the data; `top_cohort` ranks this worker's partitions and
`agents.views_cohort` merges the rankings of every worker.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.views.area_stage import TableAreaCounts
from streams.views.factors import FactorDef
from streams.views.profiles import Profile
from streams.views.snapshots import SnapshotLedger, SnapshotPolicy

__all__ = ["LiveViews", "TableViewsReader"]


class ReadableTable(Protocol):
    def get(self, key: str) -> Any: ...

    def values(self) -> Iterable[Any]: ...

    def __len__(self) -> int: ...


@dataclass
class LiveViews:
    """What the agent maintains and the reader and the emitter read (all on the event loop)."""

    profiles: ReadableTable
    counts: TableAreaCounts
    factors: Mapping[str, FactorDef]
    threshold: int
    round_to: int
    profiles_version: int = 0
    areas_version: int = 0
    facts_applied: int = 0
    dead_letters: int = 0
    last_fact_at: str | None = None
    last_emit_at: str | None = None
    pending: Callable[[], int] = field(default=lambda: 0)
    recovering: Callable[[], bool] = field(default=lambda: False)
    snapshots: SnapshotLedger = field(default_factory=lambda: SnapshotLedger(SnapshotPolicy()))

    @property
    def columns(self) -> list[str]:
        """Factor columns of the area tables (factors needing a linked adult are never extracted)."""
        return [n for n, f in self.factors.items() if not f.requires_linked_adult]

    def published(self, week: str) -> Any:
        """The frozen snapshot of a week, or None while it is open (never a live table)."""
        return self.snapshots.get(week)


class TableViewsReader:
    """The worker's `agents.web.reader.ViewsReader`."""

    def __init__(self, live: LiveViews) -> None:
        self.live = live
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        version = (self.live.profiles_version, self.live.areas_version)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        if len(self._cache) > 256:
            self._cache.clear()
        value = make()
        self._cache[key] = (version, value)
        return value

    def person(self, token: str, recipient: str | None) -> dict[str, Any] | None:
        raw = self.live.profiles.get(token)
        if not raw or recipient is None or raw.get("recipient") != recipient:
            return None  # unknown, or another recipient's view (`Profile.visible_to`)
        return Profile.from_dict(raw).summary()

    def areas(self, week: str | None) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            weeks = self.live.snapshots.weeks()
            chosen = week or (weeks[-1] if weeks else None)
            table = self.live.published(chosen) if chosen else None
            if table is None:  # nothing published for this week (yet): nothing is known, not zero
                cols = self.live.columns
                empty = {
                    "rows": [],
                    "cols": cols,
                    "cells": [],
                    "row_totals": [],
                    "col_totals": [None] * len(cols),
                }
                threshold = self.live.threshold
                return {"week": chosen, "weeks": weeks, **empty, "total": None, "threshold": threshold}
            return {"week": chosen, "weeks": weeks, **table.to_dict()}

        return dict(self._cached(("areas", week), make))

    def factors(self) -> list[dict[str, Any]]:
        return [
            {"name": n, **f.model_dump(exclude={"requires_linked_adult"})}
            for n, f in self.live.factors.items()
            if not f.requires_linked_adult
        ]

    def top_cohort(self, n: int, recipient: str | None) -> list[dict[str, Any]]:
        """The top n of `recipient`'s own view only: every view's profiles share the table."""

        def make() -> list[dict[str, Any]]:
            scored = (
                v
                for v in self.live.profiles.values()
                if v
                and recipient is not None
                and v.get("recipient") == recipient
                and float(v.get("score", 0.0)) > 0
            )
            top = heapq.nsmallest(n, scored, key=lambda v: (-float(v["score"]), v["person_token"]))
            return [
                {"person_token": v["person_token"], "score": v["score"], "explanation": v["explanation"][:3]}
                for v in top
            ]

        return list(self._cached(("cohort", n, recipient), make))

    def health(self, recipient: str | None) -> dict[str, Any]:
        live = self.live
        return {
            "status": "recovering" if live.recovering() else "ok",
            "facts_applied": live.facts_applied,
            "profiles": self._cached(("profiles", recipient), lambda: self._own_profiles(recipient)),
            "weeks": len(live.snapshots),
            "last_fact_at": live.last_fact_at,
            "dead_letters": live.dead_letters,
            "last_emit_at": live.last_emit_at,
            "pending_emits": live.pending(),
        }

    def _own_profiles(self, recipient: str | None) -> int:
        """How many of this worker's profiles are `recipient`'s view."""
        return sum(
            1 for v in self.live.profiles.values() if v and recipient and v.get("recipient") == recipient
        )

    def trend(self, factor: str) -> list[tuple[str, int | None]]:
        def make() -> dict[str, list[tuple[str, int | None]]]:
            out: dict[str, list[tuple[str, int | None]]] = {}
            for week in self.live.snapshots.weeks():
                pub = self.live.snapshots.get(week)
                assert pub is not None
                for col, total in zip(pub.cols, pub.col_totals, strict=True):
                    out.setdefault(col, []).append((week, total))
            return out

        weeks = self.live.snapshots.weeks()
        return list(self._cached(("trends",), make).get(factor, [(w, None) for w in weeks]))
