"""Issue 17, finding 5, replayed without a broker: the attacker's strategy against what is published.

The strategy: watch one week's table while events arrive one by one (successive versions), read
which row and column totals moved, wait for a suppressed cell to cross the threshold and subtract,
look for a "*" among zeros, and add one person's many events. The bus side is the real publication
path (`AreaStage` placing facts, `SnapshotFreezer` freezing due weeks, `Emitter` writing the
`views.area_counts` records), on a simulated clock; the attacker reads only the emitted records.

The control replays the same events through a live table re-published after every step (events
counted, zeros published, no rounding: the behaviour the finding measured) and checks that the
same attacker does recover what the finding describes, so the attacker is known to work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from agents.views_emit import Emitter
from agents.views_reader import LiveViews
from agents.views_snapshots import SnapshotFreezer
from streams.deadletter import Output, RawRecord
from streams.privacy.disclosure import suppress
from streams.settings import ROOT
from streams.views.area_stage import AreaStage, TableAreaCounts
from streams.views.factors import load_factors
from streams.views.periods import week_close
from streams.views.snapshots import SnapshotLedger, SnapshotPolicy
from streams.views.state import MemoryStore, ViewsTopics
from tests.support.disclosure_attack import Published, Truth, attack, from_area_records

NAMES = ViewsTopics()
FACTORS = load_factors(ROOT / "factors.yaml").factors
WEEK, NEXT = "2026-W40", "2026-W41"
COLS = ["sexual_exploitation", "weapon_carrying", "school_exclusion"]
POLICY = SnapshotPolicy(lag=timedelta(hours=72), quiet=timedelta(minutes=10))


def fact(n: int, person: str, factor: str, area: str) -> dict[str, Any]:
    return {
        "kind": "fact",
        "event_id": f"ev-{n}",
        "subject_index": 0,
        "person_token": person,
        "occurred_at": "2026-09-30T12:00:00+00:00",  # Wednesday of 2026-W40
        "factors": [factor],
        "area": {"district": area, "lsoa": None},
    }


def steps() -> list[list[dict[str, Any]]]:
    """The attacker's events, in the order they arrive (all of them occurred in WEEK)."""
    n = iter(range(10_000))
    base = [fact(next(n), f"p.rg1w{i}", "weapon_carrying", "RG1") for i in range(25)]
    base += [fact(next(n), f"p.rg2w{i}", "weapon_carrying", "RG2") for i in range(15)]
    base += [fact(next(n), f"p.rg2s{i}", "school_exclusion", "RG2") for i in range(12)]
    base += [fact(next(n), f"p.rg3s{i}", "school_exclusion", "RG3") for i in range(30)]
    cse = [fact(next(n), f"p.cse{i}", "sexual_exploitation", "RG1") for i in range(10)]
    many = [fact(next(n), "p.one", "weapon_carrying", "RG4") for _ in range(12)]  # one person
    return [base, cse[:1], cse[1:3], cse[3:], many, [fact(next(n), "p.rg4cse", "sexual_exploitation", "RG4")]]


def people(facts: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    seen: dict[str, dict[str, set[str]]] = {}
    for f in facts:
        seen.setdefault(f["area"]["district"], {}).setdefault(f["factors"][0], set()).add(f["person_token"])
    return {a: {k: len(v) for k, v in fs.items()} for a, fs in seen.items()}


def events(facts: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for f in facts:
        row = out.setdefault(f["area"]["district"], {})
        row[f["factors"][0]] = row.get(f["factors"][0], 0) + 1
    return out


class Producer:
    def __init__(self) -> None:
        self.sent: list[Output] = []

    def send_all(self, outputs: Sequence[Output], deadline_s: float | None = None) -> int:
        self.sent += outputs
        return 0


class Schemas:
    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        return json.dumps(record).encode()


class Store(MemoryStore):
    async def confirm(self) -> None:
        return None


def test_the_published_snapshots_give_the_attacker_nothing_below_the_threshold() -> None:
    clock = [week_close(WEEK) + POLICY.lag + timedelta(hours=1)]
    counts = TableAreaCounts("district")
    ledger = SnapshotLedger(POLICY, started=clock[0] - timedelta(days=1))
    stage = AreaStage(counts, MemoryStore(), NAMES, frozen=ledger)
    producer = Producer()
    emitter = Emitter(producer, Schemas(), None, NAMES, "district")  # type: ignore[arg-type]
    live = LiveViews(profiles={}, counts=counts, factors=FACTORS, threshold=10, round_to=5, snapshots=ledger)
    freezer = SnapshotFreezer(ledger, counts, Store(), emitter, lambda: COLS, lambda: True, lambda: clock[0])

    async def tick() -> None:
        await freezer.tick()
        job = emitter.take(live)
        emitter.settle(job, emitter.run(job))

    async def replay() -> None:
        for batch in steps():
            result = stage.process(
                [RawRecord(NAMES.area_facts, 0, 0, b"k", json.dumps(f).encode()) for f in batch]
            )
            stage.commit(result)
            freezer.touched(result.weeks)
            clock[0] += timedelta(minutes=11)  # the attacker waits for the next publication each time
            await tick()
        clock[0] = week_close(NEXT) + POLICY.lag + timedelta(days=1)  # and for the following week too
        await tick()

    asyncio.run(replay())
    records = [json.loads(o.value) for o in producer.sent if o.value is not None]
    versions = from_area_records(records)
    assert {v.week for v in versions} == {WEEK, NEXT}
    assert len(versions) == 2  # one version of each period, ever
    assert sum(o.value is None for o in producer.sent) == 0  # and no row of one ever withdrawn
    truth = {WEEK: counts.table(WEEK), NEXT: counts.table(NEXT)}
    assert truth[WEEK] == people(steps()[0])  # frozen after the first step: later events went on
    assert attack(versions, truth) == []
    assert all(v.round_to == 5 and v.threshold == 10 and v.zeros_hidden for v in versions)


def test_the_attacker_recovers_the_finding_from_a_live_table() -> None:
    """Control: the same events published live, as events, zeros shown, unrounded."""
    arrived: list[dict[str, Any]] = []
    versions: list[Published] = []
    truths: dict[Published, Truth] = {}
    for batch in steps():
        arrived += batch
        table = suppress(events(arrived), 10, 0, rows=sorted(events(arrived)), cols=COLS)
        version = Published.of(WEEK, table.to_dict())
        versions.append(version)
        truths[version] = people(arrived)
    found = attack(versions, truths.__getitem__)
    kinds = {line.split(":")[0] for line in found}
    assert {"difference", "person count", "exists"} <= kinds, found
    assert any("('RG4', 'weapon_carrying') has 1 people, published as 12" in line for line in found)
    assert any("difference" in line and "sexual_exploitation" in line for line in found)
