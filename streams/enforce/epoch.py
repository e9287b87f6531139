"""Epoch records: an audit chain that continues from PostgreSQL after the broker lost the ledger.

The embedded broker keeps nothing across a restart, so a new broker has an empty audit topic while
PostgreSQL still holds each chain's decisions. A new owner of a chain that finds no record of it on
the topic, but a head in PostgreSQL, writes one explicit epoch record before anything else: the
next `seq` and `prev_hash` = the hash of the last record PostgreSQL holds, with
`kind = "epoch"` and why. Verification accepts an epoch record as the first record of a chain on
the topic (nothing before it there to link to) and, against the database, requires its link to be
a record PostgreSQL holds whose hash recomputes; any other break is still a break.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams import topics
from streams.deadletter import Output
from streams.enforce.audit import AuditChain, record_hash
from streams.enforce.audit_store import AuditStore, AuditStoreError, AuditStoreUnavailable

log = logging.getLogger(__name__)

KIND_EPOCH = "epoch"
BROKER_REPLACED = "broker_replaced"
_WHY = (
    "the audit topic holds no record of this chain (a broker that kept nothing replaced the one "
    "that had it); the chain continues from the last record PostgreSQL holds"
)

# How long the enforcer waits for its epoch records to be acknowledged before giving the batch up
# (it is decided again, and the chains recovered again, on the next attempt).
EPOCH_DEADLINE_S = 30.0

Heads = Callable[[list[str]], Mapping[str, tuple[int, str]]]
Recover = Callable[[list[str]], dict[str, AuditChain]]
Write = Callable[[Sequence[Output]], Any]


def continue_chains(recover: Recover, heads: Heads, write: Write) -> Recover:
    """`recover` (from the topic) that continues chains the topic lost from their PostgreSQL heads.

    For each chain `recover` finds empty (seq 0) and `heads` knows, an epoch record is written
    (and acknowledged: `write` blocks) before the chain is handed back positioned after it, so
    no decision can precede it on the topic. If `write` raises, no chain is handed back.
    """

    def recovered(chain_ids: list[str]) -> dict[str, AuditChain]:
        chains = recover(chain_ids)
        empty = sorted(c for c, chain in chains.items() if chain.seq == 0)
        stored = heads(empty) if empty else {}
        epochs: list[Output] = []
        continued: dict[str, AuditChain] = {}
        for chain_id in empty:
            if chain_id not in stored:
                continue  # a chain that never had a record: it starts at GENESIS
            seq, digest = stored[chain_id]
            chain = AuditChain(chain_id, prev_hash=digest, seq=seq, partition=chains[chain_id].partition)
            key, value = chain.append(kind=KIND_EPOCH, reason=BROKER_REPLACED, detail=_WHY)
            epochs.append(Output(topics.AUDIT_DECISIONS, key, value, partition=chain.partition))
            continued[chain_id] = chain
        if epochs:
            write(epochs)
            log.warning(
                "audit: %d chains continue from PostgreSQL after an epoch record (%s)",
                len(epochs),
                ", ".join(sorted(continued)),
            )
        return {**chains, **continued}

    return recovered


def stored_heads(dsn: str) -> Heads:
    """`heads` from the audit table at `dsn` (the enforcer's role may read chain, seq and hash).

    PostgreSQL unreachable raises (AuditStoreUnavailable: the batch waits, no chain restarts at
    GENESIS behind its back); no table yet means no chain was ever stored.
    """
    store = AuditStore(dsn)

    def heads(chain_ids: list[str]) -> Mapping[str, tuple[int, str]]:
        try:
            return store.heads_of(chain_ids)
        except AuditStoreUnavailable:
            raise
        except AuditStoreError as exc:
            log.warning("audit: no chain heads from PostgreSQL (%s): chains the topic lacks start anew", exc)
            return {}

    return heads


@dataclass(frozen=True)
class Epoch:
    """An epoch record met first in its chain on the topic: where it is and what it links to."""

    chain: str
    seq: int
    prev_hash: str
    partition: int
    offset: int


def is_epoch(record: Mapping[str, Any]) -> bool:
    return record.get("kind") == KIND_EPOCH


StoredRecord = Callable[[str, int], Mapping[str, Any] | None]


def link_problem(epoch: Epoch, stored: StoredRecord) -> str | None:
    """Why `epoch` does not continue the chain PostgreSQL holds, or None when it does."""
    if epoch.seq < 2:
        return f"epoch record at seq {epoch.seq} continues nothing"
    record = stored(epoch.chain, epoch.seq - 1)
    if record is None:
        return f"epoch record links to seq {epoch.seq - 1}, which PostgreSQL does not hold"
    try:
        recomputed = record_hash(record)
    except ValueError as exc:
        return f"PostgreSQL's record at seq {epoch.seq - 1} cannot be hashed: {exc}"
    if recomputed != record.get("hash"):
        return f"PostgreSQL's record at seq {epoch.seq - 1} does not match its hash"
    if recomputed != epoch.prev_hash:
        return f"epoch record's prev_hash is not the hash of PostgreSQL's record at seq {epoch.seq - 1}"
    return None
