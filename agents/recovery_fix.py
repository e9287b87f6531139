"""Contained fixes for Faust on brokers that behave like Tansu, safe on Apache Kafka too.

1. Table recovery on brokers whose ListOffsets stops short (Tansu):

Faust recovers a table by reading its changelog up to `consumer.highwaters()`, which aiokafka
answers with ListOffsets: on Tansu that is the last batch's base offset + 1, so records after it
are silently left out of the recovered table (FAUST-NOTES.md: 59,999 of 60,000 keys). This replaces
that one method of Faust's aiokafka consumer thread with `streams.kafka.offsets.end_offsets` (fetch high
watermarks), which equals ListOffsets on Apache Kafka, so it is safe to keep on in production.

2. Fetch wait: Faust hard-codes aiokafka's `fetch_max_wait_ms=1500`, and Tansu does not wake a
waiting fetch when records arrive: it checks again at 1/2, 3/4, ... of the wait, so a quiet
partition that becomes busy waits up to about 750 ms (docs/performance.md). Apache Kafka wakes
fetches early, so a lower wait there only costs a few more empty fetches per second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.kafka.offsets import end_offsets

_kafka_config: dict[str, Any] | None = None
_original = faust_aiokafka.AIOKafkaConsumerThread._highwaters


async def _fetch_highwaters(self: Any, partitions: list[TP]) -> Mapping[TP, int]:
    if _kafka_config is None or self.consumer.in_transaction:
        return await _original(self, partitions)
    loop = asyncio.get_running_loop()
    ends = await loop.run_in_executor(
        None, end_offsets, _kafka_config, [(tp.topic, tp.partition) for tp in partitions]
    )
    return {tp: ends[(tp.topic, tp.partition)] for tp in partitions}


def install(kafka_config: dict[str, Any]) -> None:
    """Make Faust's recovery use fetch high watermarks for every consumer in this process."""
    global _kafka_config
    _kafka_config = dict(kafka_config)
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _fetch_highwaters  # type: ignore[method-assign]


_original_create = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
_fetch_wait_ms: int | None = None


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    consumer = _original_create(self, transport)
    if _fetch_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_wait_ms  # read by the Fetcher that consumer.start() creates
    return consumer


def lower_fetch_wait(ms: int) -> None:
    """Make every Faust consumer created after this call wait at most `ms` for fetch data."""
    global _fetch_wait_ms
    _fetch_wait_ms = ms
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
