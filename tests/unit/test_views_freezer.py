"""The freezer in the worker: only the owner of the area partition freezes, a frozen week is stored
before it is marked for emission, and the cohort of several workers is the top N of their union."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from agents.views_cohort import merge_cohorts
from agents.views_snapshots import SnapshotFreezer
from streams.views.area_stage import TableAreaCounts
from streams.views.periods import week_close
from streams.views.snapshots import SnapshotLedger, SnapshotPolicy

NOW = week_close("2026-W11") + timedelta(days=10)


class Store:
    def __init__(self, log: list[str]) -> None:
        self.log, self.data = log, {}  # type: ignore[var-annotated]

    def put(self, partition: int, key: str, value: Any) -> None:
        self.data[key] = value
        self.log.append(f"put {key}")

    async def confirm(self) -> None:
        self.log.append("confirmed")


class Marks:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def mark_weeks(self, weeks: Any) -> None:
        self.log.append(f"marked {sorted(weeks)}")


def _freezer(owner: bool, log: list[str]) -> tuple[SnapshotFreezer, Store]:
    counts = TableAreaCounts()
    for i in range(12):
        counts.apply(
            {
                "event_id": f"e{i}",
                "person_token": f"p.{i}",
                "occurred_at": "2026-03-11T10:00:00Z",
                "factors": ["weapon_carrying"],
                "area": {"district": "RG1"},
            }
        )
    ledger = SnapshotLedger(SnapshotPolicy(), started=NOW - timedelta(hours=1))
    store = Store(log)
    freezer = SnapshotFreezer(
        ledger, counts, store, Marks(log), lambda: ["weapon_carrying"], lambda: owner, lambda: NOW
    )
    return freezer, store


def test_only_the_owner_freezes_and_stores_before_marking() -> None:
    log: list[str] = []
    other, _ = _freezer(False, log)
    assert asyncio.run(other.tick()) == [] and log == []
    log.clear()
    owner, store = _freezer(True, log)
    assert asyncio.run(owner.tick()) == ["2026-W11"]
    assert log == ["put 2026-W11", "confirmed", "marked ['2026-W11']"]
    assert store.data["2026-W11"]["cells"] == [[10]] and store.data["2026-W11"]["round_to"] == 5
    assert asyncio.run(owner.tick()) == []  # never frozen twice


def test_a_recovered_owner_re_emits_what_it_stored_and_waits_before_freezing_more() -> None:
    log: list[str] = []
    owner, store = _freezer(True, log)
    asyncio.run(owner.tick())
    log.clear()
    restarted, _ = _freezer(True, log)
    restarted.recovered(store.data.items())
    assert log == ["marked ['2026-W11']"] and restarted.ledger.weeks() == ["2026-W11"]


def test_the_cohort_of_several_workers_is_the_top_n_of_the_union() -> None:
    first = [{"person_token": "p.a", "score": 9.0}, {"person_token": "p.c", "score": 2.0}]
    second = [{"person_token": "p.b", "score": 5.0}, {"person_token": "p.d", "score": 2.0}]
    assert [e["person_token"] for e in merge_cohorts([first, second], 3)] == ["p.a", "p.b", "p.c"]
    assert merge_cohorts([[], []], 5) == []


def test_a_recovery_that_lost_a_frozen_week_cannot_publish_it_twice() -> None:
    log: list[str] = []
    owner, _ = _freezer(True, log)
    asyncio.run(owner.tick())
    log.clear()
    owner.recovered([])  # the recovered table lacks the week this process froze
    assert owner.ledger.weeks() == ["2026-W11"] and log == ["put 2026-W11", "marked ['2026-W11']"]
    assert asyncio.run(owner.tick()) == []
