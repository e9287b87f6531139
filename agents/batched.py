"""A batched confluent-kafka consumer run as a service of the Faust app.

Faust's per-event Stream machinery costs about 90 us an event on this machine; the bus's two
high-volume stages (the enforcer, and the audit sink at ~1.7 records per event) read with this
instead: up to 2,000 records a poll, one handler call per batch, and a synchronous commit only
after the handler returned (it returns once its outputs are safe), so at-least-once holds. The
handler must never raise for bad input (dead-letter it); if it raises anyway, the loop rewinds to
the committed offsets and the batch is consumed again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import faust
import mode
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams import metrics
from streams.deadletter import RawRecord
from streams.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
POLL_S = 0.1  # longest a poll waits for a first record (a stop or a rebalance is seen this often)
# A loop that completes no step (a poll and the batch it handled) for this long cannot make
# progress, e.g. a handler waiting on deliveries that never come: /ready must not say ready.
STALL_S = 10.0
Handler = Callable[[list[RawRecord]], Any]


def poll_batch(consumer: Consumer, most: int, timeout: float) -> list[Any]:
    """Up to `most` messages: waits up to `timeout` for the first, then takes only what librdkafka
    has already fetched.

    `consume(most, timeout)` waits until `most` messages arrived or `timeout` passed, so a slow
    stream pays the whole timeout on every batch (100 ms a batch at 1k events/s for 2,000). This
    keeps batches small when the stream is slow and full when it is fast (the prefetch queue then
    holds more than a batch).
    """
    first: list[Any] = consumer.consume(1, timeout)
    if first and most > 1:
        first += consumer.consume(most - 1, 0)
    return first


def next_offsets(records: list[RawRecord]) -> dict[tuple[str, int], int]:
    """One past the last record of each partition in `records` (what to commit, where lag starts).

    A consumer returns each partition's records in offset order, so the last one per partition wins.
    """
    return {(r.topic, r.partition): r.offset + 1 for r in records}


def record_lag(records: list[RawRecord], highwater: Callable[[str, int], int | None]) -> None:
    """Consumer lag per input partition: the fetch high watermark (right on Tansu, unlike
    ListOffsets) minus the next offset to process."""
    for (topic, partition), position in next_offsets(records).items():
        try:
            high = highwater(topic, partition)
        except Exception:  # consumer not started or partition just revoked
            continue
        metrics.set_consumer_lag(topic, partition, high, position)


class BatchedConsumer:
    """The consume -> handle -> commit loop, on its own thread."""

    def __init__(
        self,
        settings: Settings,
        topics: list[str],
        handler: Handler,
        *,
        group: str,
        name: str,
        on_revoke: Callable[[], None] | None = None,
        on_assign: Callable[[list[tuple[str, int]]], None] | None = None,
        lag: bool = False,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.handler = handler
        self.group = group
        self.name = name
        self._on_revoke = on_revoke
        self._on_assign = on_assign
        self._lag = lag
        self.assigned: set[tuple[str, int]] = set()
        # Holds the group's current assignment (possibly empty: more workers than partitions). Until
        # then the worker is not ready: a broker completes a first join only after a delay (Tansu:
        # half the session timeout), and a worker's other consumers may be consuming meanwhile.
        self.joined = False
        self.stall_s = STALL_S
        self._progress_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def as_service(
        cls, app: faust.App, settings: Settings, topics: list[str], handler: Handler, **kw: Any
    ) -> BatchedConsumer:
        """Create one and run it as a service of `app` (started and stopped with the worker)."""
        runner = cls(settings, topics, handler, **kw)

        class BatchedConsumerService(mode.Service):
            async def on_start(self) -> None:
                runner.start()

            async def on_stop(self) -> None:
                await asyncio.get_running_loop().run_in_executor(None, runner.stop)

        BatchedConsumerService.__name__ = f"BatchedConsumer[{runner.name}]"
        app.service(BatchedConsumerService)
        return runner

    def start(self) -> None:
        self._progress_at = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def consuming(self) -> bool:
        """The loop runs and has completed a step within `stall_s` (what /ready asks).

        A live thread is not enough: one stuck in its handler (outputs that cannot be delivered,
        a rebalance callback that cannot finish) holds its partitions and consumes nothing.
        """
        return self.alive and time.monotonic() - self._progress_at < self.stall_s

    def _consumer(self) -> Consumer:
        return Consumer(self._consumer_config())

    def _consumer_config(self) -> dict[str, Any]:
        return self.settings.kafka_config(
            **{
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.settings.consumer_session_timeout_ms,
                "heartbeat.interval.ms": self.settings.consumer_heartbeat_ms,
                "fetch.wait.max.ms": self.settings.fetch_max_wait_ms,
                "log_level": 3,
            }
        )

    def _loop(self) -> None:
        consumer = self._consumer()

        def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
            if self._on_assign is not None and partitions:
                self._on_assign([(p.topic, p.partition) for p in partitions])
            # Only now: /ready counts these partitions once the hook (chain recovery) is done.
            self.assigned.update((p.topic, p.partition) for p in partitions)
            self.joined = True

        def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
            self.joined = False
            self._before_revoke(c)
            self.assigned.difference_update((p.topic, p.partition) for p in partitions)
            for p in partitions:
                metrics.remove_consumer_lag(p.topic, p.partition)
            if self._on_revoke is not None:
                self._on_revoke()

        consumer.subscribe(self.topics, on_assign=on_assign, on_revoke=on_revoke)

        def highwater(topic: str, partition: int) -> int | None:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            return int(high) if high >= 0 else None

        try:
            while not self._stop.is_set():
                try:
                    self._step(consumer, highwater)
                    self._progress_at = time.monotonic()
                except Exception:  # never let the loop die: the batch was not committed, so it replays
                    log.exception("%s batch failed; it will be consumed again", self.name)
                    try:  # a batch still in flight lands (or fails) before any state is rebuilt
                        self._before_revoke(consumer)
                    except Exception:
                        log.exception("%s: settling the batch in flight failed", self.name)
                    if self._on_revoke is not None:
                        self._on_revoke()
                    self._rewind(consumer)
                    time.sleep(1.0)
            self._before_revoke(consumer)  # a clean stop commits what is settled
        finally:
            consumer.close()

    @staticmethod
    def _poll(consumer: Consumer) -> list[RawRecord]:
        """What has arrived, up to BATCH_SIZE records; consumer errors are logged (librdkafka
        retries them). Waits only for the first record (`poll_batch`), so batches adapt to load."""
        records = []
        for m in poll_batch(consumer, BATCH_SIZE, POLL_S):
            if m.error() is None:
                records.append(RawRecord.from_message(m))
            else:
                log.warning("consumer error: %s", m.error())
        return records

    def _step(self, consumer: Consumer, highwater: Callable[[str, int], int | None]) -> None:
        records = self._poll(consumer)
        if not records:
            return
        self.handler(records)
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance: the batch is replayed (de-duplicable)
            log.warning("commit failed, the batch may be replayed: %s", exc)
        if self._lag:
            record_lag(records, highwater)

    def _before_revoke(self, consumer: Consumer) -> None:
        """Every batch is committed before the next poll, so nothing is pending here (subclasses
        that keep a batch in flight settle it)."""

    @staticmethod
    def _rewind(consumer: Consumer) -> None:
        """Go back to the committed offsets, so a failed batch is consumed again."""
        try:
            assignment = consumer.assignment()
            for tp in consumer.committed(assignment, timeout=10):
                consumer.seek(tp if tp.offset >= 0 else TopicPartition(tp.topic, tp.partition, 0))
        except KafkaException as exc:
            log.warning("could not rewind after a failed batch: %s", exc)
