"""Re-creating the worker's topics when the broker lacks them (a broker that kept nothing).

The embedded broker runs in memory: one restarted at the same address has no topics at all. A
partner's first produce would auto-create a raw topic with the broker's defaults, and Faust's
changelogs would come back uncompacted, or not at all. So each worker checks, every
`topic_check_seconds`, that the topics it may create exist, and creates the missing ones as at
start (partition counts and configs from `streams.kafka.topology`, and Faust's table changelogs as
Faust declares them). One metadata request per check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import faust
from confluent_kafka import KafkaException

from streams.errors import SharingBusError
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.settings import Settings

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, specs: Sequence[TopicSpec]) -> None:
    """A timer of `app` re-creating any of `specs` the broker lacks (none if the interval is 0)."""
    interval = settings.topic_check_seconds
    if interval <= 0 or not specs:
        return

    @app.timer(interval)
    async def recreate_missing_topics() -> None:
        wanted = [*specs, *changelogs(app)]
        loop = asyncio.get_running_loop()
        try:
            created = await loop.run_in_executor(None, ensure_topics, settings, wanted, min(interval, 10.0))
        except (SharingBusError, KafkaException) as exc:  # no broker right now: the next check retries
            log.debug("topic check skipped: %s", exc)
            return
        if created:
            log.warning(
                "re-created %d topics the broker lacked (a broker that kept nothing?): %s",
                len(created),
                ", ".join(sorted(created)),
            )


def changelogs(app: faust.App) -> list[TopicSpec]:
    """The changelog topics of `app`'s tables, with their partitions and compaction."""
    found = []
    for table in app.tables.values():
        topic = table.changelog_topic
        config = {str(k): str(v) for k, v in (topic.config or {}).items()}
        if topic.compacting:
            policy = "compact,delete" if topic.deleting else "compact"
            config.setdefault("cleanup.policy", policy)
        found.append(TopicSpec(topic.get_topic_name(), topic.partitions or app.conf.topic_partitions, config))
    return found
