"""The audit sink: `audit.decisions` into PostgreSQL, so subject access and erasure can query it.

A batched consumer (`agents.batched`) hands it up to 2,000 records a poll; each batch is written
with one round trip and committed only after it is stored: while PostgreSQL is down the sink waits
and retries (lag grows, nothing is lost). A record that cannot be parsed or stored is dead-lettered
to `dlq.audit_sink` with a reason and the batch goes on. Records of other kinds (e.g. erasure
requests) are not decisions and are skipped. The topic stays the ledger; this table is a
de-duplicated, queryable copy of it, and `reload_from_topic` (`sharebus audit reload`) rebuilds or
repairs it from the topic.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust

from agents.batched import BatchedConsumer
from streams import deadletter as dl
from streams import metrics, topics
from streams.deadletter import Output, RawRecord
from streams.enforce.audit import KIND_DECISION
from streams.enforce.audit_recovery import READER_CONFIG
from streams.enforce.audit_store import AuditStore, AuditStoreError, AuditStoreUnavailable, check_decision
from streams.errors import ValidationError
from streams.kafka.producer import DeliveringProducer
from streams.kafka.reader import read_to_end
from streams.pg import retry_while_down
from streams.settings import Settings

log = logging.getLogger(__name__)

STAGE = "audit_sink"


@dataclass
class SinkResult:
    """What one batch did: rows new in the table, duplicates, skipped other kinds, dead letters."""

    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead: list[Output] = field(default_factory=list)


class AuditSink:
    """The batch logic, apart from the consumer so tests can drive it; `handle` blocks."""

    def __init__(self, store: AuditStore, backoff: float = 0.5, max_backoff: float = 30.0) -> None:
        self.store = store
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stopping = threading.Event()
        self._schema_ready = False

    def handle(self, records: Sequence[RawRecord]) -> SinkResult:
        """Parse, store (retrying while PostgreSQL is unavailable) and return the dead letters."""
        result = SinkResult()
        good: list[tuple[RawRecord, dict[str, Any]]] = []
        for rec in records:
            try:
                parsed = json.loads(rec.value or b"")
                if not isinstance(parsed, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                result.dead.append(dl.dead_letter(rec, STAGE, dl.DECODE_ERROR, f"not JSON: {exc}"))
                continue
            if parsed.get("kind", KIND_DECISION) != KIND_DECISION:
                result.skipped += 1
                continue
            try:
                check_decision(parsed)
            except ValidationError as exc:
                result.dead.append(dl.dead_letter(rec, STAGE, dl.VALIDATION, str(exc)))
                continue
            good.append((rec, parsed))
        if good:
            try:
                stored = self._retrying(lambda: self.store.write_many([p for _, p in good]))
            except AuditStoreUnavailable:
                raise  # only when the worker stops: never dead-letter for an outage (`audit reload` repairs)
            except AuditStoreError as exc:
                # Something in the batch cannot be stored (e.g. a NUL character): find it, keep the rest.
                log.warning("audit batch refused (%s); storing record by record", exc)
                dead_before = len(result.dead)
                stored = self._one_by_one(good, result)
                good_count = len(good) - (len(result.dead) - dead_before)
            else:
                good_count = len(good)
            result.stored += stored
            result.duplicates += good_count - stored
        return result

    def _one_by_one(self, good: list[tuple[RawRecord, dict[str, Any]]], result: SinkResult) -> int:
        stored = 0
        for rec, parsed in good:
            try:
                stored += self._retrying(functools.partial(self.store.write_many, [parsed]))
            except AuditStoreUnavailable:
                raise
            except AuditStoreError as exc:
                result.dead.append(dl.dead_letter(rec, STAGE, dl.VALIDATION, f"PostgreSQL refused it: {exc}"))
        return stored

    def _retrying(self, write: Callable[[], int]) -> int:
        """Run `write` until PostgreSQL answers; AuditStoreError (bad data) passes through."""

        def attempt() -> int:
            if not self._schema_ready:
                self.store.ensure_schema()
                self._schema_ready = True
            return int(write())

        return retry_while_down(
            attempt,
            what="audit store",
            unavailable=(AuditStoreUnavailable,),
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            stopping=self.stopping,
        )


def reload_from_topic(
    kafka_config: dict[str, Any],
    store: AuditStore,
    topic: str = topics.AUDIT_DECISIONS,
    batch_size: int = 1000,
) -> SinkResult:
    """Replay the whole ledger topic (to EOF) into the store: the repair path for any gap in the copy.

    Idempotent (first decision per (event_id, recipient) wins, as in the sink). Dead letters are
    returned, not sent: the caller reports them.
    """
    sink = AuditSink(store)
    sink.stopping.set()  # an operator's command fails fast instead of waiting for PostgreSQL
    total = SinkResult()
    batch: list[RawRecord] = []

    def flush() -> None:
        result = sink.handle(batch)
        total.stored += result.stored
        total.duplicates += result.duplicates
        total.skipped += result.skipped
        total.dead += result.dead
        batch.clear()

    for msg in read_to_end({**kafka_config, **READER_CONFIG}, topic, timeout=600.0):
        batch.append(RawRecord(topic, msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value()))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return total


def register(
    app: faust.App, settings: Settings, source_topic: str = topics.AUDIT_DECISIONS
) -> BatchedConsumer:
    """Add the sink to `app` on a batched confluent-kafka consumer (agents/batched.py): the ledger
    carries ~1.7 records per event, too many for Faust's per-event Stream cost."""
    sink = AuditSink(AuditStore(settings.pg_dsn("audit")))
    producer = DeliveringProducer(settings.kafka_config())

    def handle(records: list[RawRecord]) -> None:
        result = sink.handle(records)
        for out in result.dead:
            reason = dl.header(out.headers, "sharingbus.dlq.reason") or dl.INTERNAL
            log.warning("audit record dead-lettered: %s", dl.header(out.headers, "sharingbus.dlq.detail"))
            metrics.count_dead_letter(STAGE, reason)
        if result.dead:
            producer.send_all(result.dead)

    return BatchedConsumer.as_service(
        app, settings, [source_topic], handle, group=f"{settings.consumer_group}-{STAGE}", name=STAGE
    )
