"""The enforcer: raw topics in, shared/audit/link/dead-letter records out, inside the Faust worker.

A confluent-kafka consumer thread, run as a service of the Faust app (`agents.batched`), reads up
to 2,000 records at a time and runs the engine (`streams.enforce.engine`); it decides the next
batch while the previous one's outputs are delivered and its vault rows written
(`PipelinedEnforcer`), and commits a batch only once all of that is confirmed. Faust's per-event
Stream machinery would cost about 90 us an event on this machine, a third of the enforcer's time
(docs/performance.md).

An offset is never committed before its outputs are safe (at-least-once), and a crash replays at
most the uncommitted batches (outputs are keyed and carry the event id).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import faust
from confluent_kafka import Consumer, KafkaException, TopicPartition

from agents.batched import BatchedConsumer, Handler, next_offsets, record_lag
from streams.deadletter import Output, RawRecord
from streams.enforce.engine import Batch, Enforcer, RegistryUnavailable
from streams.enforce.link_facts import write_vault_rows
from streams.errors import BrokerError
from streams.kafka.producer import DeliveringProducer, Delivery
from streams.kafka.stages import BatchStamps, StageLog
from streams.privacy.vault import Vault
from streams.rights.stage import RequestStage
from streams.settings import Settings

log = logging.getLogger(__name__)


class BatchRunner:
    """Decide a batch and start delivering everything it causes (`PipelinedEnforcer` settles it).

    A partial delivery failure may have delivered some audit records and not others: re-sending
    only the failures would break the hash chains, so the chains are recovered from the topic (the
    truth) and the whole batch is decided again. Shared outputs may then arrive twice: they are keyed
    and carry the event id, so recipients de-duplicate.
    """

    def __init__(
        self,
        enforcer: Enforcer,
        producer: DeliveringProducer,
        vault: Vault | None,
        requests: RequestStage | None = None,
    ) -> None:
        self.enforcer = enforcer
        self.producer = producer
        self.vault = vault
        self.requests = requests
        # The vault write (PostgreSQL) runs while librdkafka delivers the outputs: both must be
        # confirmed before the batch's offsets are committed, and neither waits for the other.
        self._vault_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vault")

    def decide(self, records: list[RawRecord]) -> Batch:
        """The batch's outputs and vault rows, its subject-rights requests handled, waiting out a
        registry outage."""
        attempt = 0
        while True:
            self.enforcer.prepare(records)
            try:
                batch = self.enforcer.process_batch(records)
            except RegistryUnavailable as exc:  # chains are back where the batch found them
                attempt += 1
                log.warning("%s; deciding the batch again (attempt %d)", exc, attempt)
                time.sleep(min(5.0, 0.5 * attempt))
                continue
            if self.requests is not None and batch.requests:
                self.requests.run(self.enforcer, batch)
            return batch

    def send(self, records: list[RawRecord], decided: Batch, stamps: BatchStamps | None = None) -> InFlight:
        """Start the vault write and hand the outputs to the producer; `InFlight.settle` waits."""
        vault, rows = self.vault, decided.vault_rows
        written = self._vault_writer.submit(write_vault_rows, vault, rows) if vault is not None else None
        if stamps is None:
            return InFlight(records, self.producer.start(decided.outputs), written)
        stamps.produced, stamps.outputs = time.time(), len(decided.outputs)
        return InFlight(records, self.producer.start(decided.outputs, stamps.ack_latencies), written, stamps)


@dataclass
class InFlight:
    """A decided batch whose outputs and vault rows are on their way."""

    records: list[RawRecord]
    delivery: Delivery
    vault_written: Future[None] | None
    stamps: BatchStamps | None = None

    def settle(self, producer: DeliveringProducer) -> list[Output]:
        """Wait for every output and the vault write; returns the outputs that failed."""
        try:
            failed, errors = producer.finish(self.delivery)
        finally:
            if self.vault_written is not None:
                self.vault_written.result()  # retries while PostgreSQL is down; other errors raise
        if failed:
            log.warning(
                "%d of %d outputs undelivered (%s); the batch is decided again",
                len(failed),
                len(self.delivery.outputs),
                errors[0] if errors else "",
            )
        return failed

    def offsets(self) -> list[TopicPartition]:
        """What to commit once settled: one past the batch's last record in each partition."""
        return [TopicPartition(t, p, o) for (t, p), o in next_offsets(self.records).items()]


class UndeliveredBatch(BrokerError):
    """Some outputs of a batch failed: it is consumed (and decided) again from its offsets."""


class PipelinedEnforcer(BatchedConsumer):
    """The batched enforcer, deciding batch N+1 while batch N's outputs are delivered.

    Per poll: decide the new batch (CPU), then settle the previous one (wait for its deliveries
    and vault write, commit its offsets), then start sending the new one, so the process decides
    while librdkafka and PostgreSQL work instead of waiting for them. At-least-once holds:
    a batch's offsets are committed only after all its outputs and vault rows are confirmed, and
    nothing of batch N+1 is sent before N is settled, so a failure of N (which re-decides N and
    N+1 from recovered chains) can never leave N+1's audit records after a gap.
    """

    def __init__(
        self, settings: Settings, topics: list[str], handler: Handler, *, runner: BatchRunner, **kw: Any
    ) -> None:
        super().__init__(settings, topics, handler, **kw)  # `_step` pipelines the runner's calls
        self.runner = runner
        self._pending: InFlight | None = None
        self.stages = StageLog(settings.stage_log_path)
        # Settled batches whose offsets are not committed yet (committed together, see `_settle`).
        self._settled: dict[tuple[str, int], int] = {}
        self._settled_stamps: list[BatchStamps] = []
        self._committed_at = 0.0

    def _consumer_config(self) -> dict[str, Any]:
        """The hot path's own fetch wait (publish-to-share latency), below other consumers'."""
        return {**super()._consumer_config(), "fetch.wait.max.ms": self.settings.enforcer_fetch_wait_ms}

    def _step(self, consumer: Consumer, highwater: Callable[[str, int], int | None]) -> None:
        records = self._poll(consumer)
        if not records:
            self._settle(consumer)
            return
        stamps = self.stages.start(records)
        decided = self.runner.decide(records)
        if stamps is not None:
            stamps.decided = time.time()
        self._settle(consumer)
        self._pending = self.runner.send(records, decided, stamps)
        if self._lag:
            record_lag(records, highwater)

    def _settle(self, consumer: Consumer, *, wait_for_commit: bool = False) -> None:
        """Wait for the batch in flight; commit the settled batches' offsets at most every
        `SHARINGBUS_ENFORCER_COMMIT_INTERVAL_MS`.

        Small batches (a slow stream) would otherwise mean a commit every few records, and each
        costs the broker CPU the hot path shares. Only settled batches are ever committed, so
        at-least-once holds; a crash replays at most the interval's batches (de-duplicable). The
        commit need not be waited for in steady state: if it is lost, the batches are replayed.
        Before a rebalance, at a stop and before a failed batch is rewound, it is made and waited for.
        """
        pending, self._pending = self._pending, None
        undelivered = pending is not None and bool(pending.settle(self.runner.producer))
        if pending is not None and not undelivered:
            self._settled.update(next_offsets(pending.records))
            if pending.stamps is not None:
                self._settled_stamps.append(pending.stamps)
        due = time.monotonic() - self._committed_at >= self.settings.enforcer_commit_interval_ms / 1000
        if self._settled and (due or wait_for_commit or undelivered):
            self._commit(consumer, wait=wait_for_commit or undelivered)
        if undelivered:
            raise UndeliveredBatch("outputs undelivered")  # the loop rewinds to the committed offsets

    def _commit(self, consumer: Consumer, *, wait: bool) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._settled.items()]
        stamps, self._settled, self._settled_stamps = self._settled_stamps, {}, []
        self._committed_at = time.monotonic()
        try:
            if wait:
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # e.g. a rebalance: the batches are replayed (de-duplicable)
            log.warning("commit failed, the batch may be replayed: %s", exc)
        now = time.time()
        for stamp in stamps:
            stamp.committed = now
            self.stages.write(stamp)

    def _before_revoke(self, consumer: Consumer) -> None:
        try:
            self._settle(consumer, wait_for_commit=True)  # commit what is done while they are ours
        except UndeliveredBatch:
            log.warning("a batch was undelivered at a rebalance; its next owner decides it again")


def register(
    app: faust.App, settings: Settings, raw_topics: list[str], run_batch: BatchRunner
) -> BatchedConsumer:
    """Run the enforcer on a pipelined batched consumer, as a service of `app` (started/stopped with it)."""
    return PipelinedEnforcer.as_service(
        app,
        settings,
        raw_topics,
        run_batch.decide,
        runner=run_batch,
        group=f"{settings.consumer_group}-enforcer",
        name="enforcer",
        on_revoke=run_batch.enforcer.forget_chains,
        # Every assigned partition's chain in one read back from the ledger's end, rather than a
        # read per batch that meets a partition for the first time.
        on_assign=lambda tps: run_batch.enforcer.recover([f"{t}/{p}" for t, p in tps]),
        lag=True,
    )
