"""The enforcer: raw topics in, shared/audit/link/dead-letter records out, inside the Faust worker.

Two ways to feed the same engine (`streams.enforcement`), chosen by `SHARINGBUS_ENFORCER_CONSUMER`:

- `batched` (default): a confluent-kafka consumer thread, run as a service of the Faust app, reads
  up to 2,000 records at a time, runs the engine, waits until the producer confirmed every output,
  and only then commits. Faust's per-event Stream machinery costs about 90 us an event on this
  machine (a third of the enforcer's time under py-spy); this path skips it and measured +45%
  (docs/performance.md). It is the contained fix the performance issue allowed for.
- `faust`: a Faust agent over `take_events` batches; the body blocks (in a thread) until every
  output is confirmed, so Faust acks and commits the batch only afterwards.

Either way an offset is never committed before its outputs are safe (at-least-once), and a crash
replays at most the uncommitted batches (outputs are keyed and carry the event id). The rest of
the worker (linker, views, audit sink, web) stays on Faust.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
import mode
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from faust.types import TP

from streams import metrics
from streams.deadletter import RawRecord
from streams.enforcement import Enforcer
from streams.link_facts import VaultBuffer
from streams.producer import DeliveringProducer
from streams.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
BATCH_WITHIN = 0.05


class BatchRunner:
    """Decide a batch and deliver everything it causes; on a failed delivery, decide it again.

    A partial failure may have delivered some audit records and not others: re-sending only the
    failures would break the hash chains, so the chains are recovered from the topic (the truth)
    and the whole batch is decided again. Shared outputs may then arrive twice: they are keyed
    and carry the event id, so recipients de-duplicate.
    """

    def __init__(self, enforcer: Enforcer, producer: DeliveringProducer, vault: VaultBuffer | None) -> None:
        self.enforcer = enforcer
        self.producer = producer
        self.vault = vault

    def __call__(self, records: list[RawRecord]) -> int:
        attempt = 0
        while True:
            self.enforcer.prepare(records)
            if self.vault is not None:
                self.vault.discard()
            outputs = self.enforcer.process_batch(records)
            if self.vault is not None:
                self.vault.flush()
            failed, errors = self.producer.try_send_all(outputs)
            if not failed:
                return len(outputs)
            attempt += 1
            log.warning(
                "%d of %d outputs undelivered (%s); re-deciding the batch (attempt %d)",
                len(failed),
                len(outputs),
                errors[0] if errors else "",
                attempt,
            )
            self.enforcer.forget_chains()
            time.sleep(min(5.0, 0.5 * attempt))


def _lag(records: list[RawRecord], highwater: Callable[[str, int], int | None]) -> None:
    """Consumer lag per input partition: the fetch high watermark (right on Tansu, unlike
    ListOffsets) minus the next offset to process."""
    positions: dict[tuple[str, int], int] = {}
    for r in records:
        positions[(r.topic, r.partition)] = max(positions.get((r.topic, r.partition), -1), r.offset + 1)
    for (topic, partition), position in positions.items():
        try:
            high = highwater(topic, partition)
        except Exception:  # consumer not started or partition just revoked
            continue
        metrics.set_consumer_lag(topic, partition, high, position)


def _from_message(m: Message) -> RawRecord:
    headers = m.headers() or []
    return RawRecord(
        m.topic() or "",
        m.partition() or 0,
        m.offset() or 0,
        m.key(),  # type: ignore[arg-type]  # bytes without a key deserializer
        m.value(),  # type: ignore[arg-type]
        list(headers.items() if isinstance(headers, dict) else headers),  # type: ignore[arg-type]
    )


# --- batched: a confluent-kafka consumer thread --------------------------------------------------
class BatchedConsumer:
    """The consume -> decide -> deliver -> commit loop, on its own thread."""

    def __init__(self, settings: Settings, raw_topics: list[str], run_batch: BatchRunner) -> None:
        self.settings = settings
        self.raw_topics = raw_topics
        self.run_batch = run_batch
        self.assigned: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="enforcer-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _consumer(self) -> Consumer:
        conf = self.settings.kafka_config(
            **{
                "group.id": f"{self.settings.consumer_group}-enforcer",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": self.settings.fetch_max_wait_ms,
                "log_level": 3,
            }
        )
        return Consumer(conf)

    def _loop(self) -> None:
        consumer = self._consumer()

        def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
            self.assigned.update((p.topic, p.partition) for p in partitions)

        def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
            # Every batch is committed before the next poll, so nothing is pending here; another
            # worker may extend these partitions' audit chains from now on.
            self.assigned.difference_update((p.topic, p.partition) for p in partitions)
            for p in partitions:
                metrics.remove_consumer_lag(p.topic, p.partition)
            self.run_batch.enforcer.forget_chains()

        consumer.subscribe(self.raw_topics, on_assign=on_assign, on_revoke=on_revoke)

        def highwater(topic: str, partition: int) -> int | None:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            return int(high) if high >= 0 else None

        try:
            while not self._stop.is_set():
                try:
                    self._step(consumer, highwater)
                except Exception:  # never let the loop die: the batch was not committed, so it replays
                    log.exception("enforcer batch failed; it will be consumed again")
                    self.run_batch.enforcer.forget_chains()
                    self._rewind(consumer)
                    time.sleep(1.0)
        finally:
            consumer.close()

    def _step(self, consumer: Consumer, highwater: Callable[[str, int], int | None]) -> None:
        msgs = consumer.consume(BATCH_SIZE, 0.1)
        records = [_from_message(m) for m in msgs if m.error() is None]
        for m in msgs:
            if m.error() is not None:
                log.warning("consumer error: %s", m.error())
        if not records:
            return
        self.run_batch(records)
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance: the batch is replayed (de-duplicable)
            log.warning("commit failed, the batch may be replayed: %s", exc)
        _lag(records, highwater)

    @staticmethod
    def _rewind(consumer: Consumer) -> None:
        """Go back to the committed offsets, so a failed batch is consumed again."""
        try:
            assignment = consumer.assignment()
            for tp in consumer.committed(assignment, timeout=10):
                consumer.seek(tp if tp.offset >= 0 else TopicPartition(tp.topic, tp.partition, 0))
        except KafkaException as exc:
            log.warning("could not rewind after a failed batch: %s", exc)


def register_batched(
    app: faust.App, settings: Settings, raw_topics: list[str], run_batch: BatchRunner
) -> BatchedConsumer:
    """Run the batched consumer as a service of `app` (started and stopped with the worker)."""
    loop_runner = BatchedConsumer(settings, raw_topics, run_batch)

    class EnforcerService(mode.Service):
        async def on_start(self) -> None:
            loop_runner.start()

        async def on_stop(self) -> None:
            await asyncio.get_running_loop().run_in_executor(None, loop_runner.stop)

    app.service(EnforcerService)
    return loop_runner


# --- faust: an agent over take_events batches ----------------------------------------------------
def _raw_record(event: Any) -> RawRecord:
    msg = event.message
    headers = msg.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawRecord(msg.topic, msg.partition, msg.offset, msg.key, msg.value, list(headers))


def register_agent(app: faust.App, raw_topics: list[str], run_batch: BatchRunner) -> Any:
    """Add the enforcer as a Faust agent consuming every raw topic."""
    source = app.topic(*raw_topics, value_serializer="raw", key_serializer="raw")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enforcer")

    def highwater(topic: str, partition: int) -> int | None:
        return int(app.consumer.highwater(TP(topic, partition)))

    @app.agent(source, name="enforcer", concurrency=1)
    async def enforce(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            records = [_raw_record(e) for e in events]
            await loop.run_in_executor(executor, run_batch, records)
            _lag(records, highwater)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        run_batch.enforcer.forget_chains()

    return enforce
