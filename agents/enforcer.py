"""The enforcer agent: raw topics in, shared/audit/link/dead-letter records out.

Batches from `take_events` go to a worker thread that runs the engine (`streams.enforcement`) and
blocks until the producer has confirmed every output; only then does the agent body return and
Faust ack (and later commit) the batch. So an offset is never committed before its outputs are
safe (at-least-once), and a crash replays at most the uncommitted batches (outputs are keyed by
event id and de-duplicable).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from faust.types import TP

from streams import metrics
from streams.deadletter import RawRecord
from streams.enforcement import Enforcer
from streams.link_facts import VaultBuffer
from streams.producer import DeliveringProducer

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
BATCH_WITHIN = 0.05


def _raw_record(event: Any) -> RawRecord:
    msg = event.message
    headers = msg.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawRecord(msg.topic, msg.partition, msg.offset, msg.key, msg.value, list(headers))


def _record_lag(app: faust.App, records: list[RawRecord]) -> None:
    """Consumer lag per input partition: the fetch high watermark (right on Tansu, unlike
    ListOffsets) minus the next offset to process."""
    positions: dict[tuple[str, int], int] = {}
    for r in records:
        positions[(r.topic, r.partition)] = max(positions.get((r.topic, r.partition), -1), r.offset + 1)
    for (topic, partition), position in positions.items():
        try:
            highwater = app.consumer.highwater(TP(topic, partition))
        except Exception:  # consumer not started or partition just revoked
            continue
        metrics.set_consumer_lag(topic, partition, highwater, position)


def register(
    app: faust.App,
    raw_topics: list[str],
    enforcer: Enforcer,
    producer: DeliveringProducer,
    vault: VaultBuffer | None = None,
) -> Any:
    """Add the enforcer agent to `app`, consuming every raw topic."""
    source = app.topic(*raw_topics, value_serializer="raw", key_serializer="raw")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enforcer")

    def run_batch(records: list[RawRecord]) -> int:
        """Process and deliver a batch; on any failed delivery, process it again from scratch.

        A partial failure may have delivered some audit records and not others: re-sending only
        the failures would break the hash chains, so the chains are recovered from the topic (the
        truth) and the whole batch is decided again. Shared outputs may then arrive twice:
        they are keyed and carry the event id, so recipients de-duplicate.
        """
        attempt = 0
        while True:
            enforcer.prepare(records)
            if vault is not None:
                vault.discard()
            outputs = enforcer.process_batch(records)
            if vault is not None:
                vault.flush()
            failed, errors = producer.try_send_all(outputs)
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
            enforcer.forget_chains()
            time.sleep(min(5.0, 0.5 * attempt))

    @app.agent(source, name="enforcer", concurrency=1)
    async def enforce(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            records = [_raw_record(e) for e in events]
            await loop.run_in_executor(executor, run_batch, records)
            _record_lag(app, records)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        enforcer.forget_chains()

    return enforce
