"""The enforcement engine: one raw event in, everything it causes out (shared, audit, link, dead letters).

Plain Python with no Faust in it, so the Faust agent (`agents/enforcer.py`), the benchmark and the
tests drive the same code. Per event it runs only precompiled plans and cached schemas; anything
that blocks (registry registration, audit-chain recovery) happens in `prepare()` before a batch.

Fail closed: an error while applying a plan means no output for that recipient, an `error` decision
in the audit and a dead letter; an event that cannot be trusted (undecodable, unknown schema, schema
of another topic, spoofed partner) is dead-lettered whole and reaches nobody.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import re
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streams import deadletter as dl
from streams import metrics, topics
from streams.agreements.views import ViewPlans
from streams.avro.catalogue import Catalogue
from streams.avro.formats import checker_for
from streams.avro.serde import SerdeError, decode_header
from streams.deadletter import Output, RawRecord
from streams.enforce.audit import DECISION_DEFAULTS, AuditChain, audit_partition
from streams.enforce.combine import Combiner
from streams.errors import BrokerError

log = logging.getLogger(__name__)

STAGE = "enforcer"
_MAGIC = b"\x00"


class RegistryUnavailable(BrokerError):
    """The schema registry did not answer: not the event's fault, so the batch waits and retries."""


class SchemaLookup(Protocol):
    """Writer schemas by registry id; raises LookupError for an id the registry does not know."""

    def schema_for_id(self, schema_id: int) -> dict[str, Any]: ...


class OutputSchemas(Protocol):
    """Registry ids of the plans' output schemas (registered ahead, in `prepare`)."""

    def id_for(self, subject: str, schema: dict[str, Any]) -> int: ...


AuditFn = Callable[..., None]


class SubjectRights(Protocol):
    """Data subject rights inside the enforcer (UK GDPR Arts 15-19): requests and restrictions.

    `handle_request` runs for events of `request_event_type` instead of any plan; `audit(**fields)`
    appends one record to the input partition's audit chain (every step is audited) and `out`
    collects what to produce (retractions, corrections, link/views updates). `restriction` returns
    a reason when sharing about this event's subject is restricted, else None.
    """

    request_event_type: str

    def restriction(self, partner: str, event_type: str, event: Mapping[str, Any]) -> str | None: ...

    def handle_request(
        self, partner: str, event: Mapping[str, Any], planset: Any, audit: AuditFn, out: list[Output]
    ) -> None: ...


class _Children:
    """Labelled metric children, looked up once per label tuple (`labels()` costs ~3 us a call)."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class _Tally:
    """Metric updates gathered per batch and applied once per child at the end of it.

    Each `inc()`/`observe()` on a prometheus_client metric takes a lock (and in multiprocess mode
    writes an mmap): 6-8 of them per event were ~7% of the engine's time. Scrapes see a batch at
    a time.
    """

    __slots__ = ("counts", "last_seen", "observed")

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}
        self.last_seen: dict[Any, float] = {}
        self.observed: dict[Any, list[float]] = {}

    def add(self, child: Any, n: int = 1) -> None:
        counts = self.counts
        counts[child] = counts.get(child, 0) + n

    def observe(self, child: Any, value: float) -> None:
        values = self.observed.get(child)
        if values is None:
            self.observed[child] = [value]
        else:
            values.append(value)

    def flush(self) -> None:
        counts, self.counts = self.counts, {}
        for child, n in counts.items():
            child.inc(n)
        seen, self.last_seen = self.last_seen, {}
        for child, at in seen.items():
            child.set(at)
        observed, self.observed = self.observed, {}
        for child, values in observed.items():
            observe_many(child, values)


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """`histogram.observe(v) for v in values` with one update per bucket.

    prometheus_client keeps per-bucket (non-cumulative) counts and a sum, and `observe` bumps the
    first bucket whose bound is >= the value; this does the same in bulk (a unit test compares the
    exposition with per-value `observe`). Falls back to `observe` if those internals change.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            histogram.observe(v)
        return
    per_bucket: dict[int, int] = {}
    for v in values:
        i = bisect_left(bounds, v)
        per_bucket[i] = per_bucket.get(i, 0) + 1
    total.inc(sum(values))
    for i, n in per_bucket.items():
        buckets[i].inc(n)


_PROCESSING = metrics.PROCESSING_TIME.labels(stage=STAGE)
_CONSUMED = _Children(metrics.EVENTS_CONSUMED)  # partner, event_type
_LAST_SEEN = _Children(metrics.LAST_EVENT_TIMESTAMP)  # partner
_PRODUCED = _Children(metrics.EVENTS_PRODUCED)  # recipient, event_type
_DECISIONS = _Children(metrics.DECISIONS)  # agreement, recipient, outcome
_LATENCY = _Children(metrics.END_TO_END_LATENCY)  # event_type


def _json(obj: Mapping[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


class _Writer:
    """An output schema bound to its registry id; encodes records in the Confluent wire format."""

    __slots__ = ("header", "parsed")

    def __init__(self, schema: dict[str, Any], schema_id: int) -> None:
        self.parsed = parse_schema(schema)
        self.header = _MAGIC + schema_id.to_bytes(4, "big")

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self.header)
        schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()


class _Reader:
    """How to decode one writer schema id for one event type (resolved once, then cached)."""

    __slots__ = ("error", "reader", "writer")

    def __init__(self, writer: Any = None, reader: Any = None, error: tuple[str, str] | None = None) -> None:
        self.writer = writer
        self.reader = reader
        self.error = error


# What str(uuid.UUID(x)) gives: the only spelling of an event id the bus passes on.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _event_id_as_text(schema: dict[str, Any]) -> dict[str, Any]:
    """The writer schema with `envelope.event_id` read as plain text instead of a `uuid.UUID`.

    fastavro's uuid logical type builds a UUID object that the enforcer turns straight back into
    text (~4% of its time); `_process` checks the text is a canonical UUID instead (and rewrites a
    non-canonical spelling), so events and outputs are unchanged. Other schemas pass through.
    """
    fields = schema.get("fields")
    if not isinstance(fields, list):
        return schema
    out = copy.deepcopy(schema)
    for field in out["fields"]:
        envelope = field.get("type") if field.get("name") == "envelope" else None
        if isinstance(envelope, dict) and isinstance(envelope.get("fields"), list):
            for inner in envelope["fields"]:
                kind = inner.get("type")
                if (
                    inner.get("name") == "event_id"
                    and isinstance(kind, dict)
                    and kind.get("logicalType") == "uuid"
                ):
                    inner["type"] = "string"
    return out


def _fullname(schema: Mapping[str, Any]) -> str:
    name = str(schema.get("name", ""))
    ns = schema.get("namespace")
    return name if "." in name or not ns else f"{ns}.{name}"


class Enforcer:
    """Applies the current plans to raw events; see the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        plans: Any,
        schemas: SchemaLookup,
        output_schemas: OutputSchemas,
        audit_partitions: int,
        recover_chains: Callable[[list[str]], dict[str, AuditChain]],
        link_facts: Callable[[str, str, Mapping[str, Any]], list[dict[str, Any]]] | None = None,
        rights: SubjectRights | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.plans = plans
        self.schemas = schemas
        self.output_schemas = output_schemas
        self.audit_partitions = audit_partitions
        self._recover_chains = recover_chains
        self._link_facts = link_facts
        self.rights = rights
        self._chains: dict[str, AuditChain] = {}
        self._topics: dict[str, tuple[str, str] | None] = {}
        self._readers: dict[tuple[int, str], _Reader] = {}
        self._writers: dict[tuple[str, str], _Writer] = {}
        self._planset_version: str | None = None
        self._planset: Any = None
        self._tally = _Tally()
        self._uncovered: dict[tuple[str, str, frozenset[str]], str] = {}  # per planset version
        self._combiner = Combiner(ViewPlans())  # no view grants until a plan set is loaded

    # --- before a batch (may block: run it in a thread) -----------------------------------------
    def prepare(self, records: Iterable[RawRecord]) -> None:
        """Load the current plans, register their output schemas and recover audit chains."""
        planset = self.plans.current()
        if planset.version != self._planset_version:
            self._register_outputs(planset)
            self._planset, self._planset_version = planset, planset.version
            self._uncovered = {}
            self._combiner = Combiner(getattr(planset, "views", None) or ViewPlans())
        self.recover({f"{r.topic}/{r.partition}" for r in records})

    def recover(self, chain_ids: Iterable[str]) -> None:
        """Position the chains not yet known (after an assignment) at their last audit record."""
        missing = sorted(set(chain_ids) - self._chains.keys())
        if missing:
            self._chains.update(self._recover_chains(missing))

    def forget_chains(self) -> None:
        """Partitions were revoked: another worker may extend these chains now."""
        self._chains.clear()

    def _register_outputs(self, planset: Any) -> None:
        writers: dict[tuple[str, str], _Writer] = {}
        for event_type in self.catalogue.event_types:
            for plan in planset.plans_for(event_type):
                key = (plan.output_topic, plan.plan_version)
                writer = self._writers.get(key)
                if writer is None:
                    subject = topics.value_subject(plan.output_topic)
                    writer = _Writer(
                        plan.output_schema, self.output_schemas.id_for(subject, plan.output_schema)
                    )
                writers[key] = writer
        self._writers = writers

    # --- per event (never blocks) ----------------------------------------------------------------
    def process_batch(self, records: Sequence[RawRecord]) -> list[Output]:
        """Decide a batch. On RegistryUnavailable the chains are put back where the batch found
        them (none of its records was sent) and the error is raised for the caller to retry."""
        out: list[Output] = []
        marks = {chain_id: (c.seq, c.prev_hash) for chain_id, c in self._chains.items()}
        try:
            for rec in records:
                self._process_one(rec, out)
        except RegistryUnavailable:
            self._tally = _Tally()  # the batch is decided again: count it then
            for chain_id in list(self._chains):
                if chain_id in marks:
                    chain = self._chains[chain_id]
                    chain.seq, chain.prev_hash = marks[chain_id]
                else:
                    del self._chains[chain_id]
            raise
        self._tally.flush()
        return out

    def process(self, rec: RawRecord, out: list[Output]) -> None:
        """One event (the per-event path of the naive benchmark and of tests)."""
        try:
            self._process_one(rec, out)
        finally:
            self._tally.flush()

    def _process_one(self, rec: RawRecord, out: list[Output]) -> None:
        started = time.perf_counter()
        try:
            self._process(rec, out)
        except RegistryUnavailable:
            raise  # the batch runner waits for the registry and decides the batch again
        except Exception as exc:  # a bug must not stop the stream: dead-letter and go on
            log.exception("internal error processing %s/%s/%s", rec.topic, rec.partition, rec.offset)
            self._dead(rec, out, dl.INTERNAL, f"internal error: {type(exc).__name__}")
        self._tally.observe(_PROCESSING, time.perf_counter() - started)

    def _dead(self, rec: RawRecord, out: list[Output], reason: str, detail: str) -> None:
        out.append(dl.dead_letter(rec, STAGE, reason, detail))
        metrics.count_dead_letter(STAGE, reason)

    def _topic(self, topic: str) -> tuple[str, str] | None:
        try:
            return self._topics[topic]
        except KeyError:
            try:
                parsed: tuple[str, str] | None = topics.parse_raw(topic)
            except ValueError:
                parsed = None
            self._topics[topic] = parsed
            return parsed

    def _reader(self, schema_id: int, event_type: str) -> _Reader:
        key = (schema_id, event_type)
        reader = self._readers.get(key)
        if reader is not None:
            return reader
        try:
            writer_schema = self.schemas.schema_for_id(schema_id)
        except LookupError:
            # Not cached here: RegistrySchemas remembers the miss for a while, then asks again.
            return _Reader(error=(dl.UNKNOWN_SCHEMA, f"schema id {schema_id} is not in the registry"))
        except Exception as exc:
            raise RegistryUnavailable(f"schema id {schema_id}: no answer ({type(exc).__name__})") from exc
        expected = self.catalogue.event_type(event_type)
        if _fullname(writer_schema) != _fullname(expected.schema):
            reader = _Reader(
                error=(
                    dl.SCHEMA_MISMATCH,
                    f"schema id {schema_id} is {_fullname(writer_schema)}, topic carries {event_type}",
                )
            )
        else:
            same = json.dumps(writer_schema, sort_keys=True) == json.dumps(expected.schema, sort_keys=True)
            if same:  # the common case: read the event id as text (checked in _process)
                reader = _Reader(parse_schema(_event_id_as_text(writer_schema)), None)
            else:
                reader = _Reader(parse_schema(writer_schema), expected.parsed)
        self._readers[key] = reader
        return reader

    def _process(self, rec: RawRecord, out: list[Output]) -> None:
        parsed_topic = self._topic(rec.topic)
        if parsed_topic is None:
            self._dead(rec, out, dl.VALIDATION, f"{rec.topic} is not a raw topic")
            return
        partner, event_type = parsed_topic
        if event_type not in self.catalogue.event_types:
            self._dead(rec, out, dl.SCHEMA_MISMATCH, f"{event_type} is not in the schema catalogue")
            return
        if not rec.value:
            self._dead(rec, out, dl.DECODE_ERROR, "empty value")
            return
        try:
            schema_id, payload = decode_header(rec.value)
        except SerdeError as exc:
            self._dead(rec, out, dl.DECODE_ERROR, str(exc))
            return
        reader = self._reader(schema_id, event_type)
        if reader.error is not None:
            self._dead(rec, out, *reader.error)
            return
        try:
            event = schemaless_reader(io.BytesIO(payload), reader.writer, reader.reader)
        except Exception as exc:
            self._dead(
                rec, out, dl.DECODE_ERROR, f"Avro payload does not decode: {type(exc).__name__}: {exc}"
            )
            return
        if not isinstance(event, dict):
            self._dead(rec, out, dl.DECODE_ERROR, "payload is not a record")
            return
        envelope = event.get("envelope") or {}
        claimed = envelope.get("source_partner")
        if claimed != partner:
            self._dead(rec, out, dl.SPOOFED_PARTNER, f"source_partner {claimed!r} on {partner}'s topic")
            return
        if envelope.get("event_type") != event_type:
            self._dead(rec, out, dl.SCHEMA_MISMATCH, f"envelope.event_type differs from topic ({event_type})")
            return
        raw_id = envelope.get("event_id", "")
        if type(raw_id) is str and _CANONICAL_UUID.fullmatch(raw_id):
            event_id = raw_id
        else:  # a UUID object (a resolved reader), or text to check and write canonically
            try:
                event_id = str(raw_id if type(raw_id) is uuid.UUID else uuid.UUID(str(raw_id)))
            except ValueError:
                self._dead(rec, out, dl.VALIDATION, "envelope.event_id is not a UUID")
                return
            envelope["event_id"] = event_id
        bad_format = checker_for(self.catalogue.event_types[event_type])(event)
        if bad_format:  # a format is what lets a string be shared: unchecked, it could be free text
            self._dead(rec, out, dl.VALIDATION, "; ".join(f"{p}: {r}" for p, r in bad_format))
            return
        tally = self._tally
        tally.add(_CONSUMED(partner, event_type))
        tally.last_seen[_LAST_SEEN(partner)] = time.time()
        if self.rights is not None:
            if event_type == self.rights.request_event_type:
                audit = self._auditor(rec, out)
                self.rights.handle_request(partner, event, self._planset, audit, out)
                return
            restricted = self.rights.restriction(partner, event_type, event)
            if restricted is not None:
                self._auditor(rec, out)(
                    event_id=event_id,
                    source_partner=partner,
                    event_type=event_type,
                    recipient="*",
                    outcome="denied",
                    reason=f"restricted: {restricted}",
                )
                return
        shared = self._decide(rec, event, event_id, partner, event_type, out)
        if self._link_facts is not None:
            facts = self._link_facts(partner, event_type, event)
            if facts:  # only what a view grant allows flows on; each combination is audited
                facts = self._combine(rec, out, event_id, partner, event_type, facts, shared)
            for fact in facts:
                key = f"{event_id}:{fact['subject_index']}".encode()
                out.append(Output(topics.LINK_IDENTIFIERS, key, _json(fact), partition=0))

    def _combine(
        self,
        rec: RawRecord,
        out: list[Output],
        event_id: str,
        partner: str,
        event_type: str,
        facts: list[dict[str, Any]],
        shared: set[tuple[str, str]],
    ) -> list[dict[str, Any]]:
        chain = self._chain(rec)
        part = audit_partition(chain.chain_id, self.audit_partitions)

        def seal(fields: dict[str, Any]) -> None:
            out.append(Output(topics.AUDIT_DECISIONS, chain.key, chain.seal(fields)[1], partition=part))

        base = {
            "kind": "decision",
            "event_id": event_id,
            "source_partner": partner,
            "event_type": event_type,
            "at": datetime.now(UTC).isoformat(),
            "source_offset": rec.offset,
        }
        return self._combiner.combine(partner, event_type, facts, shared, base, seal)

    def _chain(self, rec: RawRecord) -> AuditChain:
        chain_id = f"{rec.topic}/{rec.partition}"
        chain = self._chains.get(chain_id)
        if chain is None:  # prepare() was not called for this record: recover now (blocking)
            chain = self._chains[chain_id] = self._recover_chains([chain_id])[chain_id]
        return chain

    def _auditor(self, rec: RawRecord, out: list[Output]) -> AuditFn:
        """`audit(**fields)`: append to this input partition's chain and emit the record."""
        chain = self._chain(rec)
        part = audit_partition(chain.chain_id, self.audit_partitions)

        def audit(**fields: Any) -> None:
            key, value = chain.append(**fields)
            out.append(Output(topics.AUDIT_DECISIONS, key, value, partition=part))

        return audit

    def _decide(
        self,
        rec: RawRecord,
        event: dict[str, Any],
        event_id: str,
        partner: str,
        event_type: str,
        out: list[Output],
    ) -> set[tuple[str, str]]:
        """Decide and audit every recipient; returns (agreement id, recipient) of each plan that shared."""
        chain = self._chain(rec)
        audit_part = chain.partition
        if audit_part is None:
            audit_part = chain.partition = audit_partition(chain.chain_id, self.audit_partitions)
        audit_key = chain.key
        planset = self._planset
        tally = self._tally
        now_iso = datetime.now(UTC).isoformat()
        base = {
            "kind": "decision",
            "event_id": event_id,
            "source_partner": partner,
            "event_type": event_type,
            "at": now_iso,
        }
        # `source_offset` (with the chain id's topic/partition) finds the raw record again, e.g. to
        # rectify it; `output_key` is how the recipient received it, so corrections key alike.
        covered: set[str] = set()
        shared: set[tuple[str, str]] = set()
        for plan in planset.plans_for(event_type, partner):
            covered.add(plan.recipient)
            decision = plan.apply(event)
            outcome = decision.outcome
            subject_tokens: list[str] = []
            output_topic = output_key = None
            if outcome == "shared" and decision.output is not None:
                try:
                    value = self._writers[(plan.output_topic, plan.plan_version)].encode(decision.output)
                except Exception as exc:  # fail closed: the output does not match its schema
                    outcome, reason = "error", f"output does not encode: {type(exc).__name__}"
                    decision.reason = reason
                    value = b""
                if outcome == "shared" and len(value) > dl.MAX_RECORD_BYTES:
                    # Fail closed rather than wedge the batch on a record no broker would take.
                    outcome = "error"
                    decision.reason = f"output of {len(value)} bytes exceeds {dl.MAX_RECORD_BYTES}"
                if outcome == "shared":
                    shared.add((plan.agreement_id, plan.recipient))
                    subject_tokens = released_tokens(decision.output, plan.pseudonym_paths)
                    output_key = subject_tokens[0] if subject_tokens else event_id
                    headers = [("sharingbus.event_id", event_id.encode())]
                    out.append(Output(plan.output_topic, output_key.encode(), value, headers))
                    output_topic = plan.output_topic
                    tally.add(_PRODUCED(plan.recipient, event_type))
                    recorded_at = event["envelope"].get("recorded_at")
                    if isinstance(recorded_at, datetime):
                        tally.observe(_LATENCY(event_type), max(0.0, time.time() - recorded_at.timestamp()))
            if outcome == "error":
                self._dead(rec, out, dl.PLAN_ERROR, f"plan for {plan.recipient}: {decision.reason}")
            tally.add(_DECISIONS(plan.agreement_id, plan.recipient, outcome))
            _, value = chain.seal(  # a complete decision record (see AuditChain.seal)
                {
                    **base,
                    "recipient": plan.recipient,
                    "agreement_id": plan.agreement_id,
                    "agreement_version": plan.agreement_version,
                    "plan_version": plan.plan_version,
                    "outcome": outcome,
                    "reason": decision.reason,
                    "released": decision.released,  # lists, only read (serialised) by the chain
                    "withheld": decision.withheld,
                    "transformed": decision.transformed,
                    "invalid_identifiers": decision.invalid_identifiers,
                    "subject_tokens": subject_tokens,
                    "output_topic": output_topic,
                    "output_key": output_key,
                    "source_offset": rec.offset,
                }
            )
            out.append(Output(topics.AUDIT_DECISIONS, audit_key, value, partition=audit_part))
        uncovered = self._uncovered.get((event_type, partner, frozenset(covered)))
        if uncovered is None:
            names = sorted(r for r in planset.recipients if r not in covered)
            uncovered = "no agreement covers " + ", ".join(names) if names else ""
            self._uncovered[(event_type, partner, frozenset(covered))] = uncovered
        if uncovered:
            # Default deny, audited once per event for every recipient no agreement covers.
            _, value = chain.seal(
                {**DECISION_DEFAULTS, **base, "recipient": "*", "outcome": "denied", "reason": uncovered}
            )
            out.append(Output(topics.AUDIT_DECISIONS, audit_key, value, partition=audit_part))
            tally.add(_DECISIONS("none", "*", "denied"))
        return shared


def released_tokens(output: Mapping[str, Any], paths: Sequence[str]) -> list[str]:
    """Recipient-domain tokens a decision released (for subject access, and to key the output).

    `paths` are the plan's pseudonymised field paths (`subject.nhs_number`, `people[].subject.upn`).
    """
    tokens: list[str] = []
    for path in paths:
        _collect(output, path.split("."), tokens)
    return tokens


def _collect(node: Any, parts: list[str], tokens: list[str]) -> None:
    if not parts:
        if isinstance(node, str):
            tokens.append(node)
        return
    if type(node) is not dict and not isinstance(node, Mapping):  # dict first: ABC checks are slow
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        items = node.get(head[:-2])
        for item in items if isinstance(items, list) else ():
            _collect(item, rest, tokens)
    else:
        _collect(node.get(head), rest, tokens)
