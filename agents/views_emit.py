"""Periodic emission of the views: changed keys only, to the compacted topics and to PostgreSQL.

Emitting per event would write a profile (or a whole week of area rows) to the topics and the
database once per fact; instead the agents mark what changed and a timer flushes every few seconds,
so a burst of 1,000 facts about one person is one record and one upsert. `take` snapshots on the
event loop (table values are replaced, never mutated, so the snapshot is safe to hand to a thread);
`run` encodes, sends and writes in a worker thread; `settle` re-queues whatever failed. The topic
and the sink keep separate queues, so a PostgreSQL outage does not re-send records to the topic.

After a restart nothing is known to be emitted, so recovery marks every recovered key (agents.views)
and everything is emitted once more: both outputs are idempotent (compacted topic keyed by token or
"area|week", upserts that skip unchanged rows).

Memory: a job holds at most `EMIT_BATCH` profiles (`take(limit=...)`; the timer runs jobs until
nothing is pending), so what one emission allocates (snapshots, `Profile`s, encoded records, the
sink's parameters) does not grow with the number of profiles marked at once, e.g. every profile
after a restart. What was last published per area row is remembered as a small fingerprint (the
counts as a tuple of ints), not as the record: rows are weeks x areas, and kept forever.

Area rows are emitted only for FROZEN weeks (`streams.views.snapshots`): a marked week that is still
open is dropped, and a frozen week always emits its one stored snapshot, so the topic and the sink
never see two versions of a period.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from agents.views_reader import LiveViews
from streams.deadletter import Output
from streams.kafka.producer import DeliveringProducer
from streams.privacy.disclosure import SuppressedTable
from streams.views.avro import ViewSchemas, area_records, profile_record
from streams.views.profiles import Profile
from streams.views.sink import ViewsSink
from streams.views.state import ViewsTopics

log = logging.getLogger(__name__)

__all__ = ["EMIT_BATCH", "EmitJob", "Emitter"]

SEND_DEADLINE_S = 30.0
EMIT_BATCH = 5000  # most profiles in one emission job
RowPrint = tuple[Any, ...]


@dataclass
class EmitJob:
    """A snapshot of what to emit, taken on the event loop."""

    profiles: dict[str, tuple[int, dict[str, Any] | None]] = field(default_factory=dict)
    profiles_topic: set[str] = field(default_factory=set)
    profiles_sink: set[str] = field(default_factory=set)
    weeks: dict[str, SuppressedTable] = field(default_factory=dict)  # frozen snapshots only
    weeks_topic: set[str] = field(default_factory=set)
    weeks_sink: set[str] = field(default_factory=set)
    columns: list[str] = field(default_factory=list)
    threshold: int = 10
    round_to: int = 0

    @property
    def empty(self) -> bool:
        return not (self.profiles or self.weeks)


@dataclass
class EmitOutcome:
    topic_ok: bool = True
    sink_ok: bool = True
    records: int = 0


class Emitter:
    def __init__(
        self,
        producer: DeliveringProducer,
        schemas: ViewSchemas,
        sink: ViewsSink | None,
        names: ViewsTopics,
        level: str,
    ) -> None:
        self.producer, self.schemas, self.sink = producer, schemas, sink
        self.names, self.level = names, level
        self._profiles_topic: dict[str, int] = {}
        self._profiles_sink: dict[str, int] = {}
        self._weeks_topic: set[str] = set()
        self._weeks_sink: set[str] = set()
        self._last_rows: dict[str, dict[str, RowPrint]] = {}  # week -> key -> fingerprint (thread only)
        self._columns: dict[tuple[str, ...], tuple[str, ...]] = {}  # one shared tuple per column list

    # --- on the event loop ----------------------------------------------------------------------
    def mark_profiles(self, changed: Mapping[str, int]) -> None:
        self._profiles_topic.update(changed)
        if self.sink is not None:
            self._profiles_sink.update(changed)

    def mark_weeks(self, weeks: Iterable[str]) -> None:
        weeks = set(weeks)
        self._weeks_topic |= weeks
        if self.sink is not None:
            self._weeks_sink |= weeks

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget keys of revoked partitions: their new owner recovers and emits them."""
        for pending in (self._profiles_topic, self._profiles_sink):
            for token in [t for t, p in pending.items() if p in partitions]:
                del pending[token]

    def drop_weeks(self) -> None:
        self._weeks_topic.clear()
        self._weeks_sink.clear()

    def pending(self) -> int:
        return len(self._profiles_topic.keys() | self._profiles_sink.keys()) + len(
            self._weeks_topic | self._weeks_sink
        )

    def take(self, live: LiveViews, limit: int | None = None) -> EmitJob:
        """Snapshot what is pending: every week, and at most `limit` profiles (the rest stay pending)."""
        job = EmitJob(columns=live.columns, threshold=live.threshold, round_to=live.round_to)
        tokens = {**self._profiles_sink, **self._profiles_topic}
        if limit is not None and len(tokens) > limit:
            tokens = dict(islice(tokens.items(), limit))
            job.profiles_topic = {t for t in tokens if t in self._profiles_topic}
            job.profiles_sink = {t for t in tokens if t in self._profiles_sink}
            for t in tokens:
                self._profiles_topic.pop(t, None)
                self._profiles_sink.pop(t, None)
        else:
            job.profiles_topic, job.profiles_sink = set(self._profiles_topic), set(self._profiles_sink)
            self._profiles_topic, self._profiles_sink = {}, {}
        job.profiles = {t: (p, live.profiles.get(t)) for t, p in tokens.items()}
        frozen = live.snapshots
        job.weeks_topic = {w for w in self._weeks_topic if w in frozen}
        job.weeks_sink = {w for w in self._weeks_sink if w in frozen}
        for week in job.weeks_topic | job.weeks_sink:
            table = frozen.get(week)
            if table is not None:
                job.weeks[week] = table
        self._weeks_topic, self._weeks_sink = set(), set()
        return job

    def settle(self, job: EmitJob, outcome: EmitOutcome) -> None:
        """Re-queue what failed (newer marks made meanwhile win)."""
        if not outcome.topic_ok:
            for t in job.profiles_topic:
                self._profiles_topic.setdefault(t, job.profiles[t][0])
            self._weeks_topic |= job.weeks_topic
        if not outcome.sink_ok:
            for t in job.profiles_sink:
                self._profiles_sink.setdefault(t, job.profiles[t][0])
            self._weeks_sink |= job.weeks_sink

    # --- in the emitter thread --------------------------------------------------------------------
    def run(self, job: EmitJob) -> EmitOutcome:
        outcome = EmitOutcome()
        profiles = {t: Profile.from_dict(v) if v else None for t, (_, v) in job.profiles.items()}
        published = job.weeks
        outputs: list[Output] = []
        try:
            for token in sorted(job.profiles_topic):
                profile = profiles[token]
                value = self.schemas.encode(self.names.profiles, profile_record(profile)) if profile else None
                outputs.append(Output(self.names.profiles, token.encode(), value))
            rows: dict[str, dict[str, RowPrint]] = {}
            for week in sorted(job.weeks_topic):
                records = area_records(week, published[week], self.level)
                last = self._last_rows.get(week, {})
                prints: dict[str, RowPrint] = {}
                rows[week] = prints
                for key, record in records.items():
                    prints[key] = self._fingerprint(record)
                    if last.get(key) != prints[key]:
                        value = self.schemas.encode(self.names.areas, record)
                        outputs.append(Output(self.names.areas, key.encode(), value))
                gone = sorted(last.keys() - prints.keys())
                outputs += [Output(self.names.areas, key.encode(), None) for key in gone]
            self.producer.send_all(outputs, deadline_s=SEND_DEADLINE_S)
            self._last_rows.update(rows)
            outcome.records = len(outputs)
        except Exception as exc:
            log.warning("views emission to topics failed, will retry: %s", exc)
            outcome.topic_ok = False
        if self.sink is not None and (job.profiles_sink or job.weeks_sink):
            try:
                present = [p for t in sorted(job.profiles_sink) if (p := profiles[t]) is not None]
                gone = sorted(t for t in job.profiles_sink if profiles[t] is None)
                self.sink.upsert_profiles(present)
                if gone:
                    self.sink.delete_people(gone)
                for week in sorted(job.weeks_sink):
                    self.sink.upsert_area_table(week, published[week])
            except Exception as exc:
                log.warning("views sink failed, will retry: %s", exc)
                outcome.sink_ok = False
        return outcome

    def _fingerprint(self, record: Mapping[str, Any]) -> RowPrint:
        """Everything in an area record that can change, compactly (area, week and level are its key)."""
        cols = tuple(c["factor"] for c in record["counts"])
        cols = self._columns.setdefault(cols, cols)
        counts = tuple(c["count"] for c in record["counts"])
        settings = (record["threshold"], record["round_to"], record["zeros_hidden"])
        return (cols, counts, record["total"], *settings)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
