"""The enforcement engine: a batch of raw events in, everything they cause out, and nothing else.

Plain Python with no Faust, Kafka or PostgreSQL in it, so the batched consumer
(`agents/enforcer.py`), the benchmark and the unit tests drive the same code. `process_batch` is
CPU only: it runs precompiled plans against events decoded through the one codec
(`streams.avro.serde`) and returns a `Batch` of outputs, the vault rows its link facts need, and the
subject-rights requests it met, for their own stage (`streams.rights.stage`). Anything that
blocks (plan reload, output-schema registration, audit-chain recovery, the restriction set's
refresh) happens in `prepare()` before a batch.

Fail closed: an event that cannot be trusted (`streams.enforce.admit`) is dead-lettered whole and
reaches nobody; a plan that fails is an `error` decision and a dead letter (`streams.enforce.decide`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from streams import deadletter as dl
from streams import topics
from streams.agreements.compiler import PlanSet
from streams.agreements.views import ViewPlans
from streams.avro.catalogue import Catalogue
from streams.avro.serde import RegistryUnavailable, SchemaCache
from streams.deadletter import Output, RawRecord
from streams.enforce import tally as t
from streams.enforce.admit import Admission, Admitted, Refused
from streams.enforce.audit import AuditChain, audit_partition
from streams.enforce.combine import Combiner
from streams.enforce.decide import Decider, Writers
from streams.enforce.link_facts import LinkFacts, VaultRow

__all__ = ["Batch", "Enforcer", "PlanSource", "RegistryUnavailable", "Request", "SubjectRights"]

log = logging.getLogger(__name__)

STAGE = t.STAGE
AuditFn = Callable[..., None]
RecoverChains = Callable[[list[str]], dict[str, AuditChain]]


class PlanSource(Protocol):
    """Where the current plan set comes from (`streams.agreements.PlanWatcher`)."""

    def current(self) -> PlanSet: ...


class SubjectRights(Protocol):
    """What the per-event path asks of data subject rights (UK GDPR Arts 15-19).

    Events of `request_event_type` are requests: returned in `Batch.requests` for their own stage.
    `restriction` answers from memory (a reason when sharing about this event's subject is
    restricted, else None); `refresh` may query PostgreSQL and runs in `prepare`.
    """

    request_event_type: str

    def refresh(self) -> None: ...

    def restriction(self, partner: str, event_type: str, event: Mapping[str, Any]) -> str | None: ...


@dataclass(slots=True)
class Request:
    """A trusted subject-rights request, left for the request stage (`streams.rights.stage`)."""

    record: RawRecord
    partner: str
    event: dict[str, Any]


@dataclass(slots=True)
class Batch:
    """What deciding a batch caused: records to produce, vault rows to write, requests to handle."""

    outputs: list[Output] = field(default_factory=list)
    vault_rows: list[VaultRow] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


def _json(obj: Mapping[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


class Enforcer:
    """Applies the current plans to raw events; see the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        plans: PlanSource,
        schemas: SchemaCache,
        audit_partitions: int,
        recover_chains: RecoverChains,
        link_facts: LinkFacts | None = None,
        rights: SubjectRights | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.plans = plans
        self.schemas = schemas
        self.audit_partitions = audit_partitions
        self._recover_chains = recover_chains
        self._link_facts = link_facts
        self.rights = rights
        self._admission = Admission(catalogue, schemas)
        self._chains: dict[str, AuditChain] = {}
        self._writers = Writers()
        self._tally = t.Tally()
        self._planset: PlanSet | None = None
        self._decider: Decider | None = None
        self._combiner = Combiner(ViewPlans())  # no view grants until a plan set is loaded

    @property
    def planset(self) -> PlanSet:
        """The plan set batches are decided with (loaded by `prepare`)."""
        if self._planset is None:
            raise RuntimeError("prepare() loads the plans before the first batch")
        return self._planset

    # --- before a batch (may block: run it in a thread) -----------------------------------------
    def prepare(self, records: Iterable[RawRecord]) -> None:
        """Load the current plans, register their output schemas, refresh the restriction set and
        recover the audit chains the batch extends."""
        planset = self.plans.current()
        if self._planset is None or planset.version != self._planset.version:
            self._writers.register(
                (p for et in self.catalogue.event_types for p in planset.plans_for(et)), self.schemas
            )
            self._planset = planset
            self._decider = Decider(planset, self._writers, self._tally)
            self._combiner = Combiner(planset.views or ViewPlans())
        if self.rights is not None:
            self.rights.refresh()
        self.recover({f"{r.topic}/{r.partition}" for r in records})

    def recover(self, chain_ids: Iterable[str]) -> None:
        """Position the chains not yet known (after an assignment) at their last audit record."""
        missing = sorted(set(chain_ids) - self._chains.keys())
        if missing:
            self._chains.update(self._recover_chains(missing))

    def forget_chains(self) -> None:
        """Partitions were revoked: another worker may extend these chains now."""
        self._chains.clear()

    # --- per batch (CPU only) --------------------------------------------------------------------
    def process_batch(self, records: Sequence[RawRecord]) -> Batch:
        """Decide a batch. On RegistryUnavailable the chains are put back where the batch found
        them (none of its records was sent) and the error is raised for the caller to retry."""
        batch = Batch()
        marks = {chain_id: (c.seq, c.prev_hash) for chain_id, c in self._chains.items()}
        try:
            for rec in records:
                self._process_one(rec, batch)
        except RegistryUnavailable:
            self._tally = t.Tally()  # the batch is decided again: count it then
            if self._decider is not None:
                self._decider.tally = self._tally
            for chain_id in list(self._chains):
                if chain_id in marks:
                    chain = self._chains[chain_id]
                    chain.seq, chain.prev_hash = marks[chain_id]
                else:
                    del self._chains[chain_id]
            raise
        self._tally.flush()
        return batch

    def _process_one(self, rec: RawRecord, batch: Batch) -> None:
        started = time.perf_counter()
        try:
            self._process(rec, batch)
        except RegistryUnavailable:
            raise  # the batch runner waits for the registry and decides the batch again
        except Exception as exc:  # a bug must not stop the stream: dead-letter and go on
            log.exception("internal error processing %s/%s/%s", rec.topic, rec.partition, rec.offset)
            self.dead_letter(rec, batch.outputs, dl.INTERNAL, f"internal error: {type(exc).__name__}")
        self._tally.observe(t.PROCESSING, time.perf_counter() - started)

    def dead_letter(self, rec: RawRecord, out: list[Output], reason: str, detail: str) -> None:
        """Dead-letter `rec` whole, counted with the batch."""
        out.append(dl.dead_letter(rec, STAGE, reason, detail))
        self._tally.add(t.dead_letters(reason))

    def _process(self, rec: RawRecord, batch: Batch) -> None:
        ev = self._admission.admit(rec)
        if isinstance(ev, Refused):
            self.dead_letter(rec, batch.outputs, ev.reason, ev.detail)
            return
        partner, event_type = ev.partner, ev.event_type
        self._tally.add(t.CONSUMED(partner, event_type))
        self._tally.last_seen[t.LAST_SEEN(partner)] = time.time()
        if self.rights is not None:
            if event_type == self.rights.request_event_type:
                batch.requests.append(Request(rec, partner, ev.event))
                return
            restricted = self.rights.restriction(partner, event_type, ev.event)
            if restricted is not None:
                self.auditor(rec, batch.outputs)(
                    event_id=ev.event_id,
                    source_partner=partner,
                    event_type=event_type,
                    recipient="*",
                    outcome="denied",
                    reason=f"restricted: {restricted}",
                )
                return
        if self._decider is None:
            raise RuntimeError("prepare() loads the plans before the first batch")
        shared = self._decider.decide(rec, ev, self._chain(rec), batch.outputs)
        if self._link_facts is not None:
            facts, rows = self._link_facts(partner, event_type, ev.event)
            batch.vault_rows.extend(rows)
            if facts:  # only what a view grant allows flows on; each combination is audited
                facts = self._combine(rec, batch.outputs, ev, facts, shared)
            for fact in facts:
                key = f"{ev.event_id}:{fact['subject_index']}".encode()
                batch.outputs.append(Output(topics.LINK_IDENTIFIERS, key, _json(fact), partition=0))

    def _combine(
        self,
        rec: RawRecord,
        out: list[Output],
        ev: Admitted,
        facts: list[dict[str, Any]],
        shared: set[tuple[str, str]],
    ) -> list[dict[str, Any]]:
        chain = self._chain(rec)

        def seal(fields: dict[str, Any]) -> None:
            out.append(
                Output(topics.AUDIT_DECISIONS, chain.key, chain.seal(fields)[1], partition=chain.partition)
            )

        base = {
            "kind": "decision",
            "event_id": ev.event_id,
            "source_partner": ev.partner,
            "event_type": ev.event_type,
            "at": datetime.now(UTC).isoformat(),
            "source_offset": rec.offset,
        }
        return self._combiner.combine(ev.partner, ev.event_type, facts, shared, base, seal)

    def _chain(self, rec: RawRecord) -> AuditChain:
        chain_id = f"{rec.topic}/{rec.partition}"
        chain = self._chains.get(chain_id)
        if chain is None:  # prepare() was not called for this record: recover now (blocking)
            chain = self._chains[chain_id] = self._recover_chains([chain_id])[chain_id]
        if chain.partition is None:
            chain.partition = audit_partition(chain.chain_id, self.audit_partitions)
        return chain

    def auditor(self, rec: RawRecord, out: list[Output]) -> AuditFn:
        """`audit(**fields)`: append to `rec`'s input-partition chain and emit the record to `out`."""
        chain = self._chain(rec)

        def audit(**fields: Any) -> None:
            key, value = chain.append(**fields)
            out.append(Output(topics.AUDIT_DECISIONS, key, value, partition=chain.partition))

        return audit
