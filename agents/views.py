"""The views agent: live person profiles and area counts from `link.person`, served and published.

Topics (docs/contracts.md; names in `streams.topics` / `streams.kafka.topology`):
- `link.person` (partitioned by person token) and `views.profile_moves` (same partition count, keyed
  by the target token, so co-partitioned) feed ONE agent, `views` (concurrency 1, batches). A merge
  record (keyed by `from`) pops the old profile on the partition owning `from` and sends it, keyed by
  `into`, to the moves topic, where the same agent runs `merge(into, moved)` on the partition owning
  `into`. Moves are produced with the same librdkafka producer (and so the same partitioner) as the
  linker's `link.person`, which is what makes the two topics co-partitioned.
- `views.area_facts` (1 partition) carries each fact's (event_id, subject_index, factors, area,
  occurred_at) and erasures to the agent `views_areas`: area counts need one global aggregation,
  idempotent by event, and a single partition is the simplest correct way to get it.
- Out: compacted Avro `views.person_profile` (key: token) and `views.area_counts` (key: "area|week",
  value: that row of the week's SUPPRESSED table), registered in the schema registry, plus PostgreSQL
  (`streams.views.sink`). Bad input goes to `dlq.views` with a reason; nothing crashes the agent.

Faust tables (JSON keys and values, recovered by Faust from their changelogs with
`agents.recovery_fix` so Tansu's short end offsets cannot lose the tail):
- `views_person_profiles`: token -> `Profile.to_dict()` (contributions are the source of truth, so
  replays and duplicates are no-ops by (event_id, subject_index)); at most
  `streams.views.profiles.MAX_CONTRIBUTIONS` per profile, the newest, so a profile is bounded per person.
- `views_person_tombstones`: token -> {"moved_to", "erased"}: where a merged token went (erasures
  follow it) and which events were erased (a profile in flight on the moves topic cannot revive them).
- `views_area_rows`: "area|week" -> {factor: "<event key hex>..."}, ONE ROW PER (area, week) rather than
  one AreaCounts document: a batch rewrites only the rows it touched, once per batch, so the
  changelog carries a few small values per batch instead of the whole aggregate per event. The
  agent keeps a `TableAreaCounts` mirror for suppression and the API, rebuilt from the rows on
  recovery.
Per batch (take_events, concurrency 1): work the batch out, deliver its outputs (moves, area facts,
dead letters; blocking producer in a thread), only then write the tables, then wait for those
changelog writes to be acknowledged; the body returns, and Faust may commit, after all of it
(at-least-once; everything downstream is idempotent). Outputs before state: a crash between the two
replays the batch and sends the move again, never deletes a profile whose move was not delivered.
Table writes go through `send_changelog` with the record's own partition (a batch mixes partitions,
so Faust's "current event" cannot choose it).

Emission: a timer (`EMIT_INTERVAL`) flushes changed keys only (`agents.views_emit`), in a thread, in
jobs of at most `EMIT_BATCH` profiles (memory of an emission does not grow with what changed).
HTTP: the `agents.web` routes on Faust's web server, each answered by the worker owning its data
(`agents.views_web`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import TP

from agents import recovery_fix
from agents.views_emit import EMIT_BATCH, Emitter, now_iso
from agents.views_reader import LiveViews, TableViewsReader
from agents.views_snapshots import AREA_SNAPSHOTS, SnapshotFreezer
from agents.views_web import mount_web
from streams import metrics
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache
from streams.deadletter import RawRecord
from streams.errors import ConfigurationError
from streams.kafka.admin import TopicSpec, compacted, ensure_topics, partition_counts
from streams.kafka.producer import DeliveringProducer
from streams.registry.client import registry_client
from streams.settings import Settings
from streams.views.area_counts import Level
from streams.views.area_stage import AreaStage, TableAreaCounts, split_row_key
from streams.views.avro import ViewSchemas
from streams.views.factors import FactorExtractor, load_factors
from streams.views.profile_stage import ProfileStage
from streams.views.sink import ViewsSink
from streams.views.snapshots import SnapshotLedger, SnapshotPolicy
from streams.views.state import AREA_PARTITION, ViewsTopics

log = logging.getLogger(__name__)

__all__ = ["EMIT_INTERVAL", "Views", "ViewsTopics", "register"]

BATCH_SIZE = 1000
BATCH_WITHIN = 0.2
EMIT_INTERVAL = 2.0
MAX_JOBS_PER_TICK = 100  # x EMIT_BATCH profiles: then the timer yields and the next tick goes on
PROFILES = "views_person_profiles"
TOMBSTONES = "views_person_tombstones"
AREA_ROWS = "views_area_rows"
Runner = Callable[[list[RawRecord]], Awaitable[Any]]


class TableStore:
    """A `views_state.Store` over a Faust table: explicit-partition changelog writes, confirmed later."""

    def __init__(self, table: Any, retry_backoff: float = 0.5) -> None:
        self.table = table
        self._sent: dict[tuple[int, str], Any] = {}
        self._backoff = retry_backoff

    def get(self, key: str) -> Any:
        return self.table.get(key)

    def put(self, partition: int, key: str, value: Any) -> None:
        # Faust's memory store drops the keys of partitions it no longer owns by this map, which it
        # fills only while recovering: record live writes too, or they would linger after a rebalance.
        key_partition = getattr(self.table.data, "_key_partition", None)
        if key_partition is not None:
            key_partition[key] = partition
        if value is None:
            if key in self.table.data:
                del self.table.data[key]
            fut = self.table.send_changelog(partition, key, None, value_serializer="raw")
        else:
            self.table.data[key] = value
            fut = self.table.send_changelog(partition, key, value)
        self._sent[(partition, key)] = fut

    async def confirm(self) -> None:
        """Wait until every changelog write of the batch is acknowledged; re-send the ones that failed."""
        while self._sent:
            sent, self._sent = self._sent, {}
            results = await asyncio.gather(*sent.values(), return_exceptions=True)
            failed = [pk for pk, res in zip(sent, results, strict=True) if isinstance(res, BaseException)]
            if failed:
                log.warning("%d changelog writes of %s failed; re-sending", len(failed), self.table.name)
                await asyncio.sleep(self._backoff)
                for partition, key in failed:
                    self.put(partition, key, self.table.get(key))


@dataclass
class Views:
    """What `register` wired up, for the worker, tests and benchmarks."""

    live: LiveViews
    reader: TableViewsReader
    emitter: Emitter
    profiles: ProfileStage
    areas: AreaStage
    names: ViewsTopics
    partitions: int
    agents: tuple[Any, Any]


def _ensure_topics(settings: Settings, names: ViewsTopics) -> int:
    """Create what is missing; refuse layouts that would break co-partitioning or the global count."""
    counts = partition_counts(settings)
    if names.link_person not in counts:
        ensure_topics(settings, [TopicSpec(names.link_person)])
        counts = partition_counts(settings)
    n = counts[names.link_person]
    ensure_topics(
        settings,
        [
            TopicSpec(names.moves, n),
            TopicSpec(names.area_facts, 1),
            compacted(names.profiles),
            compacted(names.areas),
            TopicSpec(names.dlq),
        ],
    )
    counts = partition_counts(settings)
    if counts.get(names.moves) != n:
        raise ConfigurationError(
            f"{names.moves} has {counts.get(names.moves)} partitions, {names.link_person} has {n}: "
            "they must be co-partitioned"
        )
    if counts.get(names.area_facts) != 1:
        raise ConfigurationError(f"{names.area_facts} must have exactly 1 partition (one global count)")
    return n


def register(
    app: faust.App,
    settings: Settings,
    *,
    names: ViewsTopics | None = None,
    factors: FactorExtractor | None = None,
    level: Level = "district",
    emit_interval: float = EMIT_INTERVAL,
    use_sink: bool = True,
) -> Views:
    """Add the views tables, agents, emission timer and web routes to `app` (before it starts)."""
    names = names or ViewsTopics()
    recovery_fix.install(settings.kafka_config())
    n = _ensure_topics(settings, names)
    extractor = factors or load_factors(settings.factors_path, load_catalogue(settings.schemas_dir))

    emitter = Emitter(
        DeliveringProducer(settings.kafka_config()),
        ViewSchemas(SchemaCache(registry_client(settings)), names.profiles, names.areas),
        ViewsSink(settings.pg_dsn("views")) if use_sink else None,
        names,
        level,
    )

    async def profile_changelog(event: Any) -> None:
        """Recovery (active partitions): every recovered key is emitted once more."""
        if event.key is not None and app.assignor.is_active(event.message.tp):
            emitter.mark_profiles({str(event.key): event.message.partition})

    profiles_table = app.Table(PROFILES, default=None, partitions=n, on_changelog_event=profile_changelog)
    tombs_table = app.Table(TOMBSTONES, default=None, partitions=n)
    area_table = app.Table(AREA_ROWS, default=None, partitions=1)
    snapshots_table = app.Table(AREA_SNAPSHOTS, default=None, partitions=1)
    profiles_store, tombs_store, area_store = (
        TableStore(profiles_table),
        TableStore(tombs_table),
        TableStore(area_table),
    )
    counts = TableAreaCounts(level)
    ledger = SnapshotLedger(SnapshotPolicy.from_settings(settings))

    def recovering() -> bool:
        recovery = cast(Any, app.tables).recovery
        return bool(app.rebalancing or recovery.in_recovery or not recovery.completed.is_set())

    live = LiveViews(
        profiles=profiles_table,
        counts=counts,
        factors=extractor.factors,
        threshold=settings.suppression_threshold,
        round_to=settings.round_to,
        pending=emitter.pending,
        recovering=recovering,
        snapshots=ledger,
    )
    profile_stage = ProfileStage(
        profiles_store, tombs_store, extractor.weights(), names, extractor.catalogue.half_life_days
    )
    area_stage = AreaStage(counts, area_store, names, frozen=ledger)

    def owns_areas() -> bool:
        return bool(app.assignor.is_active(TP(area_table.changelog_topic.get_topic_name(), AREA_PARTITION)))

    freezer = SnapshotFreezer(
        ledger, counts, TableStore(snapshots_table), emitter, lambda: live.columns, owns_areas
    )

    async def snapshots_recovered() -> None:
        freezer.recovered(list(snapshots_table.items()))
        live.areas_version += 1

    snapshots_table.on_recover(snapshots_recovered)

    def batch_runner(label: str, stage: Any, stores: Sequence[TableStore]) -> Runner:
        """Process, deliver the outputs, then commit and confirm the table writes; retry until done.

        Outputs go first (a move must exist before the old profile's deletion does); the body
        returns, and Faust may commit the input offsets, only when everything is acknowledged.
        Faust would ack a batch whose body raised, so a failure retries the (idempotent) batch.
        """
        producer = DeliveringProducer(settings.kafka_config())
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"views-{label}")

        async def run(records: list[RawRecord]) -> Any:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    result = stage.process(records)
                    await loop.run_in_executor(executor, producer.send_all, result.outputs)
                    stage.commit(result)
                    for store in stores:
                        await store.confirm()
                    return result
                except Exception:
                    log.exception("views %s batch failed; retrying", label)
                    await asyncio.sleep(1.0)

        return run

    run_profiles = batch_runner("profiles", profile_stage, (profiles_store, tombs_store))
    run_areas = batch_runner("areas", area_stage, (area_store,))
    emit_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="views-emit")
    source = app.topic(names.link_person, names.moves, value_serializer="raw", key_serializer="raw")
    area_source = app.topic(names.area_facts, value_serializer="raw", key_serializer="raw")

    @app.agent(source, name="views", concurrency=1)
    async def views(stream: faust.StreamT) -> None:
        async for events in cast(faust.Stream, stream).take_events(BATCH_SIZE, within=BATCH_WITHIN):
            records = [RawRecord.from_event(e) for e in events]
            result = await run_profiles(records)
            live.facts_applied += result.applied
            live.dead_letters += result.dead
            live.last_fact_at = result.last_fact_at or live.last_fact_at
            if result.changed:
                live.profiles_version += 1
                emitter.mark_profiles(result.changed)

    @app.agent(area_source, name="views_areas", concurrency=1)
    async def views_areas(stream: faust.StreamT) -> None:
        async for events in cast(faust.Stream, stream).take_events(BATCH_SIZE, within=BATCH_WITHIN):
            records = [RawRecord.from_event(e) for e in events]
            async with freezer.lock:  # no week freezes between placing facts and storing the rows
                result = await run_areas(records)
                freezer.touched(result.weeks)
            live.dead_letters += result.dead
            if result.late:
                log.warning(
                    "%d area facts arrived after their week was published and count in a later week "
                    "(event, own week, counted in): %s",
                    len(result.late),
                    result.late[:5],
                )
            if result.weeks:
                live.areas_version += 1
                emitter.mark_weeks(result.weeks)

    async def areas_recovered() -> None:
        """Rebuild the area mirror from the recovered rows; the owner emits every week once more."""
        counts.reload((split_row_key(str(k)), v) for k, v in list(area_table.items()))
        live.areas_version += 1
        if owns_areas():
            emitter.mark_weeks(counts.weeks())

    area_table.on_recover(areas_recovered)

    async def assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        """Forget pending emissions of partitions this worker no longer owns (their owner emits them).

        The signal carries the whole new assignment (an eager rebalance revokes everything first, so
        "revoked" is useless here); partitions kept are not recovered again, so their marks stay.
        """
        tps = args[0] if args else kwargs.get("assigned", ())
        mine = {tp.partition for tp in tps if tp.topic == names.link_person}
        emitter.drop_partitions(set(range(n)) - mine)
        if not any(tp.topic == names.area_facts for tp in tps):
            emitter.drop_weeks()

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # faust's stub is too narrow

    # --- emission ------------------------------------------------------------------------------------
    @app.timer(emit_interval)
    async def views_emit() -> None:
        metrics.TABLE_ENTRIES.labels(table=PROFILES).set(len(profiles_table))
        metrics.TABLE_ENTRIES.labels(table=TOMBSTONES).set(len(tombs_table))
        metrics.TABLE_ENTRIES.labels(table=AREA_ROWS).set(len(area_table))
        # Jobs of at most EMIT_BATCH profiles, one after the other, until nothing is pending: what
        # an emission holds in memory stays the same however many profiles changed (a restart
        # marks all of them). A failed job is re-queued and waits for the next tick.
        loop = asyncio.get_running_loop()
        if not recovering() and await freezer.tick():
            live.areas_version += 1
        for _ in range(MAX_JOBS_PER_TICK):
            if recovering():
                return
            job = emitter.take(live, limit=EMIT_BATCH)
            if job.empty:
                return
            outcome = await loop.run_in_executor(emit_executor, emitter.run, job)
            emitter.settle(job, outcome)
            if not (outcome.topic_ok and outcome.sink_ok):
                return
            live.last_emit_at = now_iso()

    reader = TableViewsReader(live)
    mount_web(app, reader, profiles_table, area_table, n)
    return Views(live, reader, emitter, profile_stage, area_stage, names, n, (views, views_areas))
