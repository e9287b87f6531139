"""The audit ledger: hash-chained records of every disclosure decision (DPO control 8, DPA 2018 s.62).

One record per (event, recipient) decision goes to `topics.AUDIT_DECISIONS` as canonical JSON (UTF-8,
sorted keys, compact separators). Records form one hash chain per enforcer input partition, chain id
`"<raw_topic>/<partition>"`: only one worker owns an input partition at a time, so each chain has a
single writer and needs no coordination. Each record carries `seq` (1, 2, ...), `prev_hash` (the
previous record's `hash`; the first links to `GENESIS`) and `hash` = sha256 of the canonical JSON of
the record without `hash`. Editing, deleting, inserting or reordering records breaks the chain, and
`verify` reports where. (Dropping the *tail* of a chain is only visible against an anchor kept
elsewhere: `verify(..., anchors=AuditStore.chain_heads())`.)

All records of a chain go to one audit partition (`audit_partition`), chosen explicitly by the
producer, so the chain is totally ordered and a new owner can find its end (`recover_chain`). Ends
are found with partition EOF, never ListOffsets (Tansu answers those wrongly; FAUST-NOTES.md).

Producer requirements (the enforcer): produce with `key=key, partition=chain.partition`, keep the
records of one chain in order (`enable.idempotence=true`, or `max.in.flight.requests.per.connection=1`
where idempotence is unavailable), and confirm their delivery before committing the input offset. If
a delivery fails, stop and let the next owner `recover_chain`: re-decided events simply appear again
later in the chain (at-least-once); the PostgreSQL store keeps the first decision per (event, recipient).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer

from streams import topics
from streams.errors import BrokerError, ConfigurationError, ValidationError
from streams.kafka.offsets import end_offsets
from streams.kafka.reader import read_partitions, read_to_end

GENESIS = "0" * 64
KIND_DECISION = "decision"
OUTCOMES = frozenset({"shared", "denied", "error"})

# Fields of a decision record the caller must give; the rest default (null or empty list).
DECISION_REQUIRED = frozenset({"event_id", "source_partner", "event_type", "recipient", "outcome", "reason"})
DECISION_DEFAULTS: Mapping[str, Any] = {
    "agreement_id": None,
    "agreement_version": None,
    "plan_version": None,
    "released": [],
    "withheld": [],
    "transformed": [],
    "invalid_identifiers": [],
    "subject_tokens": [],
    "output_topic": None,
}
# Set by the chain, never by the caller.
CHAIN_FIELDS = frozenset({"chain", "seq", "prev_hash", "hash"})

# A random stand-in for the hash while the record is encoded (see AuditChain.append).
_PLACEHOLDER = secrets.token_hex(32)
_PLACEHOLDER_B = _PLACEHOLDER.encode()
_HASH_ITEM_B = f'"hash":"{_PLACEHOLDER}",'.encode()


class _Canonical:
    """Canonical JSON text: sorted keys, compact separators, UTF-8; orjson (8x faster than json).

    The ledger is written 3-5 times per event, so this is on the enforcer's hot path. Only strings,
    integers, booleans, None and lists of them go in, for which orjson and `json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)` give identical bytes (a unit test holds them equal).
    """

    _OPTIONS = orjson.OPT_SORT_KEYS

    def encode(self, record: Mapping[str, Any]) -> str:
        return self.encode_bytes(record).decode()

    def encode_bytes(self, record: Mapping[str, Any]) -> bytes:
        # orjson writes NaN and infinities as null: refuse them, as json's allow_nan=False did.
        # (Top-level values only: records carry lists of field paths and kinds, never floats.)
        for value in record.values():
            if type(value) is float and not math.isfinite(value):
                raise ValueError("NaN and infinity have no canonical JSON")
        try:
            return orjson.dumps(record, option=self._OPTIONS)
        except orjson.JSONEncodeError as exc:
            raise TypeError(str(exc)) from exc


_ENCODER = _Canonical()


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a record: UTF-8 JSON, sorted keys, compact separators, no NaN."""
    return _ENCODER.encode_bytes(record)


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of `record` without its `hash` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def chain_id(raw_topic: str, partition: int) -> str:
    """Chain id of one enforcer input partition: `"<raw_topic>/<partition>"`."""
    return f"{raw_topic}/{partition}"


def audit_partition(chain: str, n_partitions: int) -> int:
    """The audit partition every record of `chain` goes to (crc32: stable across processes/versions).

    Changing the audit topic's partition count moves chains; never repartition the audit topic.
    """
    if n_partitions < 1:
        raise ConfigurationError(f"audit topic needs at least one partition, got {n_partitions}")
    return zlib.crc32(chain.encode()) % n_partitions


def now_iso() -> str:
    """Current time as ISO 8601 UTC with milliseconds (the `at` of a record)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class AuditChain:
    """The writer's position in one chain: `append` builds the next record and advances.

    Single writer by construction (one owner per input partition); not thread-safe. `partition` is
    the audit partition to produce to (set by `recover_chain`; `None` if built by hand).
    """

    __slots__ = ("chain_id", "key", "partition", "prev_hash", "seq")

    def __init__(
        self, chain_id: str, prev_hash: str = GENESIS, seq: int = 0, partition: int | None = None
    ) -> None:
        if len(prev_hash) != 64:
            raise ValueError(f"prev_hash must be 64 hex characters, got {prev_hash!r}")
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        self.chain_id = chain_id
        self.prev_hash = prev_hash
        self.seq = seq
        self.partition = partition
        self.key = chain_id.encode()  # the Kafka key of every record of this chain

    def __repr__(self) -> str:
        return (
            f"AuditChain({self.chain_id!r}, prev_hash={self.prev_hash!r}, seq={self.seq}, "
            f"partition={self.partition})"
        )

    def append(self, **fields: Any) -> tuple[bytes, bytes]:
        """Next record of the chain as (key, value) bytes; advances `seq` and `prev_hash`.

        `fields` are the record's content; `kind` defaults to "decision" (which requires
        DECISION_REQUIRED and defaults the rest to null/[]) and `at` to now (str or datetime).
        The key is the chain id. The record is encoded once (about 9 us per append, measured).
        """
        if CHAIN_FIELDS.intersection(fields):
            raise ValidationError(
                "audit", f"chain fields are set by the chain: {sorted(CHAIN_FIELDS & fields.keys())}"
            )
        kind = fields.setdefault("kind", KIND_DECISION)
        if kind == KIND_DECISION:
            missing = DECISION_REQUIRED.difference(fields)
            if missing:
                raise ValidationError("audit", f"decision record misses {sorted(missing)}")
            if fields["outcome"] not in OUTCOMES:
                raise ValidationError(
                    "outcome", f"must be one of {sorted(OUTCOMES)}, got {fields['outcome']!r}"
                )
            for k, v in DECISION_DEFAULTS.items():
                if k not in fields:
                    fields[k] = v
        at = fields.get("at")
        if at is None:
            fields["at"] = now_iso()
        elif isinstance(at, datetime):
            if at.tzinfo is None:
                raise ValidationError("at", "must be timezone-aware")
            fields["at"] = at.astimezone(UTC).isoformat(timespec="milliseconds")
        return self.seal(fields)

    def seal(self, fields: dict[str, Any]) -> tuple[bytes, bytes]:
        """`append` without its argument checks, for the enforcer's hot path (~3 us of ~9 saved).

        `fields` must already be a complete record, as `append` would complete it (`kind`, every
        decision field, `at` as text, JSON values only, no chain fields): the enforcer builds its
        records that way, and a unit test holds both paths to identical bytes. It is modified.
        """
        seq = self.seq + 1
        fields["chain"] = self.chain_id
        fields["seq"] = seq
        fields["prev_hash"] = self.prev_hash
        fields["hash"] = _PLACEHOLDER
        try:
            text = _ENCODER.encode_bytes(fields)
        except (TypeError, ValueError) as exc:
            raise ValidationError("audit", f"record is not JSON-serialisable: {exc}") from exc
        # Encode once with a placeholder hash, then cut it out for the hashed body. "hash" is never
        # the last key ("prev_hash" and "seq" sort after it), so its item ends with a comma.
        if text.count(_PLACEHOLDER_B) == 1:
            i = text.index(_HASH_ITEM_B)
            head, tail = text[:i], text[i + len(_HASH_ITEM_B) :]
        else:  # the caller's data contains this process's random placeholder: encode around it
            del fields["hash"]
            head = _ENCODER.encode_bytes({k: v for k, v in fields.items() if k < "hash"})[:-1] + b","
            tail = _ENCODER.encode_bytes({k: v for k, v in fields.items() if k > "hash"})[1:]
        digest = hashlib.sha256(head + tail).hexdigest()
        self.seq = seq
        self.prev_hash = digest
        return self.key, b"".join((head, b'"hash":"', digest.encode(), b'",', tail))


# --------------------------------------------------------------------------- recovery


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


# --------------------------------------------------------------------------- verification


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
    ) -> None:
        self.report = VerifyReport(topic)
        self.n_partitions = n_partitions
        self.anchors = dict(anchors or {})
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
        for chain, (seq, digest) in sorted(self.anchors.items()):
            found = self._seen.get((chain, seq))
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
        return self.report


def verify(
    kafka_config: dict[str, Any],
    topic: str = topics.AUDIT_DECISIONS,
    timeout: float = 120.0,
    anchors: Mapping[str, tuple[int, str]] | None = None,
) -> VerifyReport:
    """Read the whole audit topic (to partition EOF) and check every chain.

    Per chain: seq increments by one, prev_hash links, hash recomputes, and the chain stays in
    the partition `audit_partition` gives. `anchors` (chain -> (seq, hash), e.g. from
    `AuditStore.chain_heads()`) must all be found: the only way to notice a truncated tail.
    """
    n_partitions = topic_partitions(kafka_config, topic)  # BrokerError for a missing topic: no false OK
    verifier = ChainVerifier(topic, n_partitions, anchors)
    for msg in read_to_end({**kafka_config, **READER_CONFIG}, topic, timeout=timeout):
        verifier.feed(msg.value(), msg.partition() or 0, msg.offset() or 0)
    return verifier.finish()
