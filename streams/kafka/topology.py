"""Every topic the bus owns, with explicit partitions and configuration, created before workers start."""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.avro.catalogue import Catalogue
from streams.kafka.admin import TopicSpec, compacted
from streams.settings import Settings

DLQ_STAGES = ("enforcer", "linker", "views", "audit_sink")
DAY_MS = 24 * 3600 * 1000

# Bus-internal topics of the views agent (agents/views.py). Not recipient views: recipients' ACLs
# name `views.person_profile` and `views.area_counts` literally, never a `views.` prefix.
VIEWS_PROFILE_MOVES = "views.profile_moves"  # merged profiles on their way to the new token's partition
VIEWS_AREA_FACTS = "views.area_facts"  # 1 partition: the one global area x week x factor aggregation


def bus_topics(settings: Settings, catalogue: Catalogue, planset: Any | None = None) -> list[TopicSpec]:
    """Raw, shared (retention from each agreement), audit, dead-letter, link and view topics."""
    specs = [TopicSpec(topic) for _, _, topic in catalogue.raw_topics()]
    specs += [
        # The ledger is the proof of what was shared: never deleted by time, never compacted.
        TopicSpec(topics.AUDIT_DECISIONS, None, {"retention.ms": "-1", "cleanup.policy": "delete"}),
        TopicSpec(topics.LINK_IDENTIFIERS, 1),
        TopicSpec(topics.LINK_PERSON),
        compacted(topics.LINK_STATE, 1),
        compacted(topics.VIEWS_PERSON_PROFILE),
        compacted(topics.VIEWS_AREA_COUNTS),
        TopicSpec(VIEWS_PROFILE_MOVES),  # co-partitioned with link.person: same (default) count
        TopicSpec(VIEWS_AREA_FACTS, 1),
    ]
    specs += [TopicSpec(topics.dlq(stage)) for stage in DLQ_STAGES]
    if planset is not None:
        seen: set[str] = set()
        for event_type in catalogue.event_types:
            for plan in planset.plans_for(event_type):
                if plan.output_topic in seen:
                    continue
                seen.add(plan.output_topic)
                config = {}
                retention_days = getattr(plan, "retention_days", None)
                if retention_days:
                    config["retention.ms"] = str(int(retention_days) * DAY_MS)
                specs.append(TopicSpec(plan.output_topic, None, config))
    return specs
