"""Verifying the audit ledger: every chain's sequence, links and hashes, read from the topic.

Editing, deleting, inserting or reordering records breaks a chain and is reported as a `Break`;
a truncated tail shows only against anchors kept elsewhere (`AuditStore.chain_heads()`). A chain
may begin on the topic with an epoch record (`streams.enforce.epoch`): it continues the chain
PostgreSQL holds, which `stored` (a lookup of PostgreSQL's records) checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams import topics
from streams.enforce.audit import GENESIS, audit_partition, record_hash
from streams.enforce.audit_recovery import READER_CONFIG, topic_partitions
from streams.enforce.epoch import Epoch, StoredRecord, is_epoch, link_problem
from streams.kafka.reader import read_to_end


@dataclass(frozen=True)
class Break:
    """One place where a chain does not hold: which record and what is wrong with it."""

    chain: str | None  # None when the record is unreadable
    seq: int | None
    partition: int
    offset: int
    problem: str


@dataclass
class ChainSummary:
    """What verification saw of one chain."""

    chain: str
    partition: int
    records: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS


@dataclass
class VerifyReport:
    """Result of `verify`: chains, record count and every break; `ok` when there is none."""

    topic: str
    records: int = 0
    chains: dict[str, ChainSummary] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    epochs: list[Epoch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


class ChainVerifier:
    """Checks records fed in partition-offset order; `verify` feeds it from the topic, tests directly."""

    def __init__(
        self,
        topic: str,
        n_partitions: int | None = None,
        anchors: Mapping[str, tuple[int, str]] | None = None,
        stored: StoredRecord | None = None,
    ) -> None:
        self.report = VerifyReport(topic)
        self.n_partitions = n_partitions
        self.anchors = dict(anchors or {})
        self.stored = stored
        self._seen: dict[tuple[str, int], str] = {}  # (chain, seq) -> hash, anchored chains only

    def feed(self, value: bytes | None, partition: int, offset: int) -> None:
        report = self.report
        report.records += 1
        try:
            rec = json.loads(value or b"")
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            chain, seq, prev, stored = rec["chain"], rec["seq"], rec["prev_hash"], rec["hash"]
            if not isinstance(chain, str) or not isinstance(seq, int):
                raise ValueError("chain must be a string and seq an integer")
        except (ValueError, KeyError) as exc:
            report.breaks.append(Break(None, None, partition, offset, f"unreadable record: {exc}"))
            return
        if chain in self.anchors:
            self._seen[(chain, seq)] = str(stored)
        problems = []
        summary = report.chains.get(chain)
        if summary is None:
            summary = report.chains[chain] = ChainSummary(chain, partition)
            if is_epoch(rec):  # the chain's earlier records are in PostgreSQL, not on this topic
                report.epochs.append(Epoch(chain, seq, str(prev), partition, offset))
                summary.last_seq, summary.last_hash = seq - 1, str(prev)
            if self.n_partitions and partition != audit_partition(chain, self.n_partitions):
                problems.append(
                    f"chain is in partition {partition}, expected {audit_partition(chain, self.n_partitions)}"
                )
        elif summary.partition != partition:
            problems.append(f"chain spans partitions {summary.partition} and {partition}")
        if seq != summary.last_seq + 1:
            problems.append(f"seq {seq} follows {summary.last_seq}")
        if prev != summary.last_hash:
            problems.append("prev_hash does not link to the previous record")
        try:
            recomputed = record_hash(rec)
        except ValueError as exc:  # NaN/Infinity cannot be canonical
            recomputed = f"<{exc}>"
        if recomputed != stored:
            problems.append("hash does not match the record's contents")
        if problems:
            report.breaks.append(Break(chain, seq, partition, offset, "; ".join(problems)))
        # Resynchronise on this record so one tampering gives one break, not a cascade.
        summary.records += 1
        summary.last_seq = seq
        summary.last_hash = str(stored)

    def finish(self) -> VerifyReport:
        """Check the anchors (each must be a record of the topic: catches a dropped tail); the report."""
        continued = {e.chain: e.seq for e in self.report.epochs}
        for chain, (seq, digest) in sorted(self.anchors.items()):
            found = self._seen.get((chain, seq))
            if found is None and seq < continued.get(chain, 0):
                continue  # before the epoch: the link check below vouches for it
            if found is None:
                summary = self.report.chains.get(chain)
                last = summary.last_seq if summary else 0
                self.report.breaks.append(
                    Break(
                        chain,
                        seq,
                        summary.partition if summary else -1,
                        -1,
                        f"anchored record missing from the topic (chain ends at seq {last})",
                    )
                )
            elif found != digest:
                self.report.breaks.append(Break(chain, seq, -1, -1, "anchored hash differs from the topic's"))
        if self.stored is not None:
            for epoch in self.report.epochs:
                problem = link_problem(epoch, self.stored)
                if problem is not None:
                    self.report.breaks.append(
                        Break(epoch.chain, epoch.seq, epoch.partition, epoch.offset, problem)
                    )
        return self.report


def verify(
    kafka_config: dict[str, Any],
    topic: str = topics.AUDIT_DECISIONS,
    timeout: float = 120.0,
    anchors: Mapping[str, tuple[int, str]] | None = None,
    stored: StoredRecord | None = None,
) -> VerifyReport:
    """Read the whole audit topic (to partition EOF) and check every chain.

    Per chain: seq increments by one, prev_hash links, hash recomputes, and the chain stays in
    the partition `audit_partition` gives. `anchors` (chain -> (seq, hash), e.g. from
    `AuditStore.chain_heads()`) must all be found: the only way to notice a truncated tail.
    `stored` (e.g. `AuditStore.record_at`) checks that each epoch record links to PostgreSQL's chain.
    """
    n_partitions = topic_partitions(kafka_config, topic)  # BrokerError for a missing topic: no false OK
    verifier = ChainVerifier(topic, n_partitions, anchors, stored)
    for msg in read_to_end({**kafka_config, **READER_CONFIG}, topic, timeout=timeout):
        verifier.feed(msg.value(), msg.partition() or 0, msg.offset() or 0)
    return verifier.finish()
