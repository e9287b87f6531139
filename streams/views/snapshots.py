"""Frozen snapshots of closed periods: the only form in which area counts leave the bus.

A live table that is re-published as every event arrives can be differenced: the change between
two versions is the new event, and its row and column totals say where it went
(docs/disclosure-control.md). So area counts are published per closed ISO week, ONCE:

- a week is frozen when it has closed, `lag` has passed and nothing has changed in it for `quiet`
  (`due`); the frozen table is suppressed with the threshold, rounded to the base and has its zeros
  hidden (`snapshot`), and is never recomputed: re-emitting it (after a restart, to a new sink)
  sends the identical table;
- an event that reaches the counts after its week was frozen counts in the earliest week not yet
  frozen (`streams.views.area_counts.AreaCounts.place`), the way recorded-crime statistics count a
  crime in the period it was recorded: no published period ever changes, by any amount;
- an erasure after freezing leaves the frozen table as it is: it counts at least `threshold`
  people per published cell, rounded, so it is not personal data about any one of them.

`check_published` states the invariant every snapshot is checked against before it is stored: no
published value between 1 and the threshold, no published zero when zeros are hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.errors import SharingBusError
from streams.privacy.disclosure import SuppressedTable, suppress
from streams.settings import Settings
from streams.views.periods import is_closed, parse_week

__all__ = ["DisclosureError", "SnapshotLedger", "SnapshotPolicy", "check_published", "snapshot"]


class DisclosureError(SharingBusError):
    """A table that would publish a small number (a bug: `suppress` never produces one)."""


@dataclass(frozen=True)
class SnapshotPolicy:
    """How closed weeks are published; the defaults follow ONS / NHS England small-number practice."""

    threshold: int = 10
    round_to: int = 5
    lag: timedelta = timedelta(hours=72)
    quiet: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be >= 1")
        if self.round_to < 0:
            raise ValueError("round_to must be >= 0")
        if self.lag < timedelta(0) or self.quiet < timedelta(0):
            raise ValueError("lag and quiet must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> SnapshotPolicy:
        return cls(
            threshold=settings.suppression_threshold,
            round_to=settings.round_to,
            lag=timedelta(hours=settings.area_publish_lag_hours),
            quiet=timedelta(seconds=settings.area_quiet_seconds),
        )


def columns_of(catalogue: Sequence[str], table: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Columns of a published week: every catalogue factor, then any other factor that was counted."""
    seen = {f for row in table.values() for f in row}
    return list(catalogue) + sorted(seen - set(catalogue))


def snapshot(
    table: Mapping[str, Mapping[str, int]], catalogue: Sequence[str], policy: SnapshotPolicy
) -> SuppressedTable:
    """The published form of a closed week's people counts: suppressed, rounded, zeros hidden."""
    published = suppress(
        table,
        policy.threshold,
        policy.round_to,
        rows=sorted(table),
        cols=columns_of(catalogue, table),
        hide_zeros=True,
    )
    check_published(published)
    return published


def _values(table: SuppressedTable) -> Iterable[int | None]:
    for row in table.cells:
        yield from row
    yield from table.row_totals
    yield from table.col_totals
    yield table.total


def check_published(table: SuppressedTable) -> None:
    """Raise unless every published value is suppressed or at least the threshold (0 only if shown)."""
    for value in _values(table):
        if value is None:
            continue
        if 0 < value < table.threshold or (value == 0 and table.zeros_hidden) or value < 0:
            raise DisclosureError(f"a published value of {value} is below the threshold {table.threshold}")


class SnapshotLedger:
    """Which weeks are frozen, their published tables, and when each unfrozen week last changed."""

    def __init__(self, policy: SnapshotPolicy, started: datetime | None = None) -> None:
        self.policy = policy
        self._frozen: dict[str, SuppressedTable] = {}
        self._touched: dict[str, datetime] = {}
        self._started = started or datetime.now(UTC)  # after a restart every week waits `quiet` again

    def __contains__(self, week: object) -> bool:
        return week in self._frozen

    def __len__(self) -> int:
        return len(self._frozen)

    def get(self, week: str) -> SuppressedTable | None:
        return self._frozen.get(week)

    def weeks(self) -> list[str]:
        return sorted(self._frozen)

    def touch(self, weeks: Iterable[str], now: datetime) -> None:
        """Weeks that just changed: each waits `quiet` from now before it may freeze."""
        for week in weeks:
            if week not in self._frozen:
                self._touched[week] = now

    def due(self, weeks: Iterable[str], now: datetime) -> list[str]:
        """Weeks (of those with counts) that may be frozen now, oldest first."""
        policy = self.policy
        return sorted(
            w
            for w in weeks
            if w not in self._frozen
            and is_closed(w, now, policy.lag)
            and now - self._touched.get(w, self._started) >= policy.quiet
        )

    def freeze(
        self, week: str, table: Mapping[str, Mapping[str, int]], catalogue: Sequence[str]
    ) -> SuppressedTable:
        """Publish a week once; a second call is a bug, refused rather than re-published."""
        parse_week(week)
        if week in self._frozen:
            raise DisclosureError(f"week {week} is already published and may not change")
        published = snapshot(table, catalogue, self.policy)
        self._frozen[week] = published
        self._touched.pop(week, None)
        return published

    def load(self, week: str, doc: Mapping[str, Any] | None) -> None:
        """Restore a stored snapshot (table recovery); None forgets it."""
        if doc is None:
            self._frozen.pop(week, None)
            return
        table = SuppressedTable.from_dict(doc)
        check_published(table)
        self._frozen[week] = table

    def reload(
        self, items: Iterable[tuple[str, Mapping[str, Any] | None]], now: datetime | None = None
    ) -> None:
        """Add the frozen weeks of a table recovery. A week this process froze stays frozen even if
        the recovered table lacks it (a changelog tail lost in recovery must not publish it twice).
        Every open week waits `quiet` again from `now`: a worker that has just taken the counts over
        does not know when they last changed."""
        for week, doc in items:
            if doc is not None:
                self.load(week, doc)
        self._touched.clear()
        self._started = now or datetime.now(UTC)
