"""Freezing closed weeks of the area counts, in the worker that owns the one area partition.

The emission timer calls `SnapshotFreezer.tick`: every week that is due (closed, lag passed, quiet;
`streams.views.snapshots.SnapshotLedger.due`) is frozen from the live mirror, stored in the
`views_area_snapshots` table, and only once that changelog write is acknowledged marked for emission,
so no snapshot reaches the topic or the sink that a restart could forget and compute a second time.

`lock` is held by the area agent around each batch as well: a week is never frozen between a batch
placing facts in it and that batch's table rows being written, so a replay after a crash cannot
count again, in the next week, a fact the frozen snapshot already holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from streams.views.area_stage import TableAreaCounts
from streams.views.snapshots import SnapshotLedger
from streams.views.state import AREA_PARTITION

__all__ = ["AREA_SNAPSHOTS", "SnapshotFreezer"]

log = logging.getLogger(__name__)

AREA_SNAPSHOTS = "views_area_snapshots"  # week -> SuppressedTable.to_dict(), one partition


class ConfirmedStore(Protocol):
    def put(self, partition: int, key: str, value: Any) -> None: ...

    async def confirm(self) -> None: ...


class Marks(Protocol):
    def mark_weeks(self, weeks: Iterable[str]) -> None: ...


class SnapshotFreezer:
    def __init__(
        self,
        ledger: SnapshotLedger,
        counts: TableAreaCounts,
        store: ConfirmedStore,
        emitter: Marks,
        columns: Callable[[], list[str]],
        owns_areas: Callable[[], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ledger, self.counts, self.store, self.emitter = ledger, counts, store, emitter
        self.columns, self.owns_areas, self.clock = columns, owns_areas, clock
        self.lock = asyncio.Lock()

    def touched(self, weeks: Iterable[str]) -> None:
        """Weeks an area batch changed (call under `lock`): their quiet interval starts again."""
        self.ledger.touch(weeks, self.clock())

    async def tick(self) -> list[str]:
        """Freeze and store every due week; returns them (already marked for emission)."""
        if not self.owns_areas():
            return []
        async with self.lock:
            due = self.ledger.due(self.counts.weeks(), self.clock())
            loop = asyncio.get_running_loop()
            for week in due:  # suppression of a large table takes seconds: off the event loop
                table, columns = self.counts.table(week), self.columns()
                published = await loop.run_in_executor(None, self.ledger.freeze, week, table, columns)
                self.store.put(AREA_PARTITION, week, published.to_dict())
            await self.store.confirm()  # also what `recovered` stored again
            if due:
                log.info("published the frozen area tables of %d weeks: %s", len(due), ", ".join(due))
                self.emitter.mark_weeks(due)
        return due

    def recovered(self, items: Iterable[tuple[Any, Any]]) -> None:
        """Reload the stored snapshots (table recovery); the owner emits each of them once more, and
        stores again any week it froze that the recovered table lacks (a lost changelog tail)."""
        items = list(items)
        stored = {str(k) for k, v in items if v is not None}
        self.ledger.reload(((str(k), v) for k, v in items), self.clock())
        if self.owns_areas():
            for week in self.ledger.weeks():
                table = self.ledger.get(week)
                if week not in stored and table is not None:
                    self.store.put(AREA_PARTITION, week, table.to_dict())  # confirmed by the next tick
            self.emitter.mark_weeks(self.ledger.weeks())
