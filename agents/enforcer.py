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
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from faust.types import TP

from agents.batched import BatchedConsumer, record_lag
from streams.deadletter import RawRecord
from streams.enforcement import Enforcer, RegistryUnavailable
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
        # The vault write (PostgreSQL) runs while librdkafka delivers the outputs: both must be
        # confirmed before the batch returns (and its offsets are committed). ~13% of the enforcer's
        # wall time was spent waiting for PostgreSQL alone (benchmarks/throughput.py, py-spy).
        self._vault_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vault")

    def __call__(self, records: list[RawRecord]) -> int:
        attempt = 0
        while True:
            self.enforcer.prepare(records)
            if self.vault is not None:
                self.vault.discard()
            try:
                outputs = self.enforcer.process_batch(records)
            except RegistryUnavailable as exc:
                attempt += 1
                log.warning("%s; deciding the batch again (attempt %d)", exc, attempt)
                self.enforcer.forget_chains()  # appended in memory, never sent
                time.sleep(min(5.0, 0.5 * attempt))
                continue
            vault_written = self._vault_writer.submit(self.vault.flush) if self.vault is not None else None
            try:
                failed, errors = self.producer.try_send_all(outputs)
            finally:
                if vault_written is not None:
                    vault_written.result()  # retries while PostgreSQL is down; other errors raise
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


# --- batched: a confluent-kafka consumer thread -------------------------------------------------
def register_batched(
    app: faust.App, settings: Settings, raw_topics: list[str], run_batch: BatchRunner
) -> BatchedConsumer:
    """Run the enforcer on a batched consumer, as a service of `app` (started/stopped with it)."""
    return BatchedConsumer.as_service(
        app,
        settings,
        raw_topics,
        run_batch,
        group=f"{settings.consumer_group}-enforcer",
        name="enforcer",
        on_revoke=run_batch.enforcer.forget_chains,
        # Every assigned partition's chain in one read back from the ledger's end, rather than a
        # read per batch that meets a partition for the first time.
        on_assign=lambda tps: run_batch.enforcer.recover([f"{t}/{p}" for t, p in tps]),
        lag=True,
    )


# --- faust: an agent over take_events batches ----------------------------------------------------


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
            records = [RawRecord.from_event(e) for e in events]
            await loop.run_in_executor(executor, run_batch, records)
            record_lag(records, highwater)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        run_batch.enforcer.forget_chains()

    return enforce
