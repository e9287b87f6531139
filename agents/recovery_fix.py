"""Contained fix for Faust table recovery on brokers whose ListOffsets stops short (Tansu).

Faust recovers a table by reading its changelog up to `consumer.highwaters()`, which aiokafka
answers with ListOffsets: on Tansu that is the last batch's base offset + 1, so records after it
are silently left out of the recovered table (FAUST-NOTES.md: 59,999 of 60,000 keys). This replaces
that one method of Faust's aiokafka consumer thread with `streams.offsets.end_offsets` (fetch high
watermarks), which equals ListOffsets on Apache Kafka, so it is safe to keep on in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.offsets import end_offsets

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
