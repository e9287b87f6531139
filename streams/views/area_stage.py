"""`AreaStage`: the global table of people per (area, week, factor), and the one published form of a week.

Rows are keyed `"<area>|<week>"` (`row_key`) in the table and on `views.area_counts`; a week leaves
the bus only through `publish_week`, which applies small-number suppression.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from streams import deadletter as dl
from streams import metrics
from streams.deadletter import Output, RawRecord
from streams.privacy.disclosure import SuppressedTable, suppress
from streams.views.area_counts import AreaCounts, Cell, iso_week
from streams.views.profiles import (
    event_key,
)
from streams.views.state import (
    AREA_PARTITION,
    STAGE,
    BadRecord,
    Store,
    ViewsTopics,
    check_fact,
    parse_event_ids,
    parse_record,
)

log = logging.getLogger(__name__)

ROW_SEP = "|"

__all__ = [
    "AreaResult",
    "AreaStage",
    "TableAreaCounts",
    "publish_week",
    "row_key",
    "split_row_key",
    "week_columns",
]


def row_key(area: str, week: str) -> str:
    """Key of an area row, in the area table and on `views.area_counts`: "<area>|<week>"."""
    return f"{area}{ROW_SEP}{week}"


def split_row_key(key: str) -> tuple[str, str]:
    area, _, week = key.rpartition(ROW_SEP)
    return area, week


class TableAreaCounts(AreaCounts):
    """`AreaCounts` with row-level access, so a Faust table can hold one small value per (area, week).

    A row value is `{factor: "p<event hex><person hex>..."}` (`streams.views.area_counts.Cell`);
    rows of event keys alone (a string of 16-hex-digit keys, or a list of them) still load.
    """

    def row(self, area: str, week: str) -> dict[str, str] | None:
        factors = self._weeks.get(week, {}).get(area)
        if not factors:
            return None
        return {f: cell.to_hex() for f, cell in sorted(factors.items())}

    def load_row(self, area: str, week: str, value: Mapping[str, str | Iterable[str]] | None) -> None:
        areas = self._weeks.setdefault(week, {})
        if value:
            areas[area] = {f: Cell.from_hex(keys) for f, keys in value.items() if keys}
        else:
            areas.pop(area, None)
        if not areas.get(area):
            areas.pop(area, None)
        if not areas:
            del self._weeks[week]

    def reload(
        self, rows: Iterable[tuple[tuple[str, str], Mapping[str, str | Iterable[str]] | None]]
    ) -> None:
        """Replace everything with ((area, week), row value) pairs (after table recovery)."""
        self._weeks = {}
        for (area, week), value in rows:
            self.load_row(area, week, value)

    def rows_of(self, event_id: str) -> set[tuple[str, str]]:
        """(area, week) rows holding an event: what a retraction rewrites."""
        key = event_key(event_id)
        return {
            (area, week)
            for week, areas in self._weeks.items()
            for area, factors in areas.items()
            if any(cell.has_event(key) for cell in factors.values())
        }

    def rows(self) -> Iterator[tuple[str, str]]:
        for week, areas in self._weeks.items():
            for area in areas:
                yield area, week


@dataclass
class AreaResult:
    outputs: list[Output] = field(default_factory=list)  # dead letters
    weeks: set[str] = field(default_factory=set)  # weeks whose published table may have changed
    applied: int = 0
    dead: int = 0
    # (event id, its own week, the week it counted in): facts that arrived after their week was
    # published, so the published tables of their own weeks will never show them
    late: list[tuple[str, str, str]] = field(default_factory=list)


class AreaStage:
    """The one global aggregation: area facts into `TableAreaCounts`, one table row per (area, week)."""

    def __init__(
        self, counts: TableAreaCounts, store: Store, topics: ViewsTopics, frozen: Container[str] = ()
    ) -> None:
        self.counts, self.store, self.topics = counts, store, topics
        self.frozen = frozen  # published weeks: a fact of one counts in the next open week
        self._dirty: set[tuple[str, str]] = set()  # rows changed in the mirror, not yet in the table

    def process(self, records: Sequence[RawRecord]) -> AreaResult:
        """Count a batch in the mirror; the changed rows stay pending until `commit` writes them.

        The mirror changes at once, so a batch run again counts nothing twice and the rows it
        changed the first time are still pending: a retried batch loses no table write.
        """
        result = AreaResult()
        dirty = self._dirty
        for record in records:
            try:
                doc = parse_record(record.value)
                kind = doc.get("kind")
                if kind == "fact":
                    check_fact(doc)
                    placed = self.counts.place(doc, self.frozen)
                    dirty.update((area, week) for area, week, _ in placed)
                    own = iso_week(doc["occurred_at"]) if placed else None
                    later = sorted({week for _, week, _ in placed if week != own})
                    if own is not None and later:
                        result.late.append((str(doc["event_id"]), own, later[0]))
                    result.applied += 1
                elif kind == "retract":
                    for event_id in parse_event_ids(doc):
                        rows = self.counts.rows_of(event_id)
                        if rows and self.counts.retract(event_id):
                            dirty.update(rows)
                else:
                    raise BadRecord(dl.VALIDATION, f"unknown area record kind {str(kind)[:40]!r}")
            except BadRecord as exc:
                self._dead(record, exc.reason, str(exc), result)
            except Exception as exc:
                log.exception("views area failed on %s/%d/%d", record.topic, record.partition, record.offset)
                self._dead(record, dl.INTERNAL, type(exc).__name__, result)
        result.weeks = {week for _, week in dirty}
        return result

    def commit(self, result: AreaResult) -> None:
        """Write every pending row (one small value per (area, week)) to the table."""
        for area, week in sorted(self._dirty):
            self.store.put(AREA_PARTITION, row_key(area, week), self.counts.row(area, week))
        self._dirty.clear()

    def _dead(self, record: RawRecord, reason: str, detail: str, result: AreaResult) -> None:
        out = dl.dead_letter(record, STAGE, reason, detail)
        out.topic = self.topics.dlq
        result.outputs.append(out)
        result.dead += 1
        metrics.count_dead_letter(STAGE, reason)


def week_columns(catalogue: Sequence[str], table: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Columns of a published week: every catalogue factor, then any other factor that was counted."""
    seen = {f for row in table.values() for f in row}
    return list(catalogue) + sorted(seen - set(catalogue))


def publish_week(
    table: Mapping[str, Mapping[str, int]], catalogue: Sequence[str], threshold: int, round_to: int
) -> SuppressedTable:
    """The only form of a week's counts that leaves the bus (API, topic and sink all use this)."""
    return suppress(table, threshold, round_to, rows=sorted(table), cols=week_columns(catalogue, table))
