"""Topic administration: every topic is created explicitly, with the catalogue's partition count.

Tansu auto-creates topics with 4 partitions, and Faust tables crash-loop on a partition mismatch, so
the bus never relies on auto-creation (FAUST-NOTES.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.errors import BrokerError
from streams.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    """A topic the bus owns: name, partitions and configuration (e.g. compaction, retention)."""

    name: str
    partitions: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)


def compacted(name: str, partitions: int | None = None) -> TopicSpec:
    return TopicSpec(name, partitions, {"cleanup.policy": "compact"})


def ensure_topics(settings: Settings, specs: Iterable[TopicSpec], timeout: float = 15.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left untouched."""
    admin = AdminClient(settings.kafka_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(
            s.name,
            s.partitions or settings.topic_partitions,
            settings.replication_factor,
            config=dict(s.config),
        )
        for s in specs
        if s.name not in existing
    ]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"could not create topic {name}: {err}") from exc
    return created


def partition_counts(settings: Settings, timeout: float = 10.0) -> dict[str, int]:
    """Partition count of every topic the broker knows."""
    md = AdminClient(settings.kafka_config()).list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in md.topics.items()}
