"""Finding where audit chains end, so a new owner of an input partition continues its chain.

Each chain's records sit in one audit partition (`audit_partition`); its end is found by reading
to partition EOF, never with ListOffsets (Tansu answers those wrongly; FAUST-NOTES.md).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer

from streams import topics
from streams.enforce.audit import AuditChain, audit_partition
from streams.errors import BrokerError, ConfigurationError
from streams.kafka.offsets import end_offsets
from streams.kafka.reader import read_partitions

# For one-shot readers: an empty fetch otherwise waits 500 ms before partition EOF is reported.
READER_CONFIG = {"fetch.wait.max.ms": 20}


def topic_partitions(kafka_config: dict[str, Any], topic: str = topics.AUDIT_DECISIONS) -> int:
    """Partition count of the audit topic from metadata (BrokerError if it does not exist)."""
    consumer = Consumer({**kafka_config, "group.id": f"sharingbus-audit-{uuid.uuid4().hex}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    finally:
        consumer.close()
    if meta is None or meta.error is not None or not meta.partitions:
        raise BrokerError(f"audit topic {topic} does not exist: create it before writing audit records")
    return len(meta.partitions)


def recover_chains(
    kafka_config: dict[str, Any],
    chain_ids: Iterable[str],
    n_partitions: int,
    topic: str = topics.AUDIT_DECISIONS,
    timeout: float = 60.0,
    window: int = 4096,
) -> dict[str, AuditChain]:
    """Chains positioned after their last record, read back from each audit partition's end.

    For a rebalance that hands a worker several input partitions at once. A chain with no
    record yet starts at GENESIS. Raises BrokerError if the audit topic is missing or its
    partition count is not `n_partitions` (records would be looked for in the wrong place).
    """
    actual = topic_partitions(kafka_config, topic)
    if actual != n_partitions:
        raise ConfigurationError(
            f"audit topic {topic} has {actual} partitions, caller expects {n_partitions}"
        )
    wanted = {c: audit_partition(c, n_partitions) for c in chain_ids}
    chains = {c: AuditChain(c, partition=p) for c, p in wanted.items()}
    keys = {c.encode(): c for c in wanted}
    last: dict[str, bytes] = {}
    # Read back from the end in growing windows, each to EOF: a chain's last record is the last one
    # seen from any start, and active chains are found in the first window, so a rebalance costs
    # the recent tail of the ledger, not all of it (a chain with no record yet costs a full read).
    ends = end_offsets(kafka_config, [(topic, p) for p in set(wanted.values())], timeout)
    lowest = {p: ends[(topic, p)] for p in set(wanted.values())}  # where reading has started so far
    span = window
    while True:
        todo = {wanted[c] for c in wanted if c not in last and lowest[wanted[c]] > 0}
        if not todo:
            break
        starts = {p: max(0, ends[(topic, p)] - span) for p in todo}
        for msg in read_partitions({**kafka_config, **READER_CONFIG}, topic, todo, timeout, starts):
            key = msg.key()
            if key in keys:  # the key is the chain id: no JSON parsing for other chains
                last[keys[key]] = msg.value() or b""
        lowest.update(starts)
        span *= 4
    for c, raw in last.items():
        p = wanted[c]
        try:
            rec = json.loads(raw)
            seq, prev = int(rec["seq"]), str(rec["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokerError(f"last audit record of chain {c} in {topic}[{p}] is unreadable: {exc}") from exc
        if rec.get("chain") != c:
            raise BrokerError(f"audit record keyed {c!r} in {topic}[{p}] names chain {rec.get('chain')!r}")
        chains[c] = AuditChain(c, prev_hash=prev, seq=seq, partition=p)
    return chains


def recover_chain(
    kafka_config: dict[str, Any],
    chain_id: str,
    n_partitions: int,
    topic: str = topics.AUDIT_DECISIONS,
    timeout: float = 60.0,
) -> AuditChain:
    """The chain positioned after its last record, found by reading its audit partition to EOF."""
    return recover_chains(kafka_config, [chain_id], n_partitions, topic, timeout)[chain_id]
