"""One trusted event against the current plans: a decision per recipient, each audited on the chain.

Fail closed: an error while applying or encoding a plan's output means no output for that
recipient, an `error` decision in the audit and a dead letter (`plan_error`); an output too big for
any broker is an error too, rather than a batch wedged on it. Every recipient no agreement covers
gets one default-deny record per event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastavro import parse_schema

from streams import deadletter as dl
from streams import topics
from streams.agreements.compiler import Plan, PlanSet
from streams.avro.serde import SchemaCache, encode
from streams.deadletter import Output, RawRecord
from streams.enforce import tally as t
from streams.enforce.admit import Admitted
from streams.enforce.audit import DECISION_DEFAULTS, AuditChain
from streams.enforce.released import released_tokens

STAGE = t.STAGE


class Writers:
    """Each plan's output schema, parsed and bound to its registry id (registered in `prepare`)."""

    def __init__(self) -> None:
        self._by_plan: dict[tuple[str, str], tuple[Any, int]] = {}

    def register(self, plans: Iterable[Plan], schemas: SchemaCache) -> None:
        """Keep a writer for each of `plans` (registering new schemas: may block on the registry)."""
        writers: dict[tuple[str, str], tuple[Any, int]] = {}
        for plan in plans:
            key = (plan.output_topic, plan.plan_version)
            writer = self._by_plan.get(key)
            if writer is None:
                subject = topics.value_subject(plan.output_topic)
                writer = (parse_schema(plan.output_schema), schemas.id_for(subject, plan.output_schema))
            writers[key] = writer
        self._by_plan = writers

    def encode(self, plan: Plan, record: dict[str, Any]) -> bytes:
        parsed, schema_id = self._by_plan[(plan.output_topic, plan.plan_version)]
        return encode(parsed, schema_id, record)


class Decider:
    """Decides events against one plan set (a new plan set gets a new Decider)."""

    def __init__(self, planset: PlanSet, writers: Writers, tally: t.Tally) -> None:
        self.planset = planset
        self.writers = writers
        self.tally = tally
        self._uncovered: dict[tuple[str, str, frozenset[str]], str] = {}

    def decide(
        self, rec: RawRecord, ev: Admitted, chain: AuditChain, out: list[Output]
    ) -> set[tuple[str, str]]:
        """Decide and audit every recipient; returns (agreement id, recipient) of each plan that shared."""
        event, event_id, partner, event_type = ev.event, ev.event_id, ev.partner, ev.event_type
        audit_key, audit_part = chain.key, chain.partition
        tally = self.tally
        base = {
            "kind": "decision",
            "event_id": event_id,
            "source_partner": partner,
            "event_type": event_type,
            "at": datetime.now(UTC).isoformat(),
        }
        # `source_offset` (with the chain id's topic/partition) finds the raw record again, e.g. to
        # rectify it; `output_key` is how the recipient received it, so corrections key alike.
        covered: set[str] = set()
        shared: set[tuple[str, str]] = set()
        for plan in self.planset.plans_for(event_type, partner):
            covered.add(plan.recipient)
            decision = plan.apply(event)
            outcome = decision.outcome
            subject_tokens: list[str] = []
            output_topic = output_key = None
            if outcome == "shared" and decision.output is not None:
                try:
                    value = self.writers.encode(plan, decision.output)
                except Exception as exc:  # fail closed: the output does not match its schema
                    outcome, value = "error", b""
                    decision.reason = f"output does not encode: {type(exc).__name__}"
                if outcome == "shared" and len(value) > dl.MAX_RECORD_BYTES:
                    outcome = "error"
                    decision.reason = f"output of {len(value)} bytes exceeds {dl.MAX_RECORD_BYTES}"
                if outcome == "shared":
                    shared.add((plan.agreement_id, plan.recipient))
                    subject_tokens = released_tokens(decision.output, plan.pseudonym_paths)
                    output_key = subject_tokens[0] if subject_tokens else event_id
                    headers = [("sharingbus.event_id", event_id.encode())]
                    out.append(Output(plan.output_topic, output_key.encode(), value, headers))
                    output_topic = plan.output_topic
                    tally.add(t.PRODUCED(plan.recipient, event_type))
                    recorded_at = event["envelope"].get("recorded_at")
                    if isinstance(recorded_at, datetime):
                        tally.observe(t.LATENCY(event_type), max(0.0, time.time() - recorded_at.timestamp()))
            if outcome == "error":
                out.append(
                    dl.dead_letter(rec, STAGE, dl.PLAN_ERROR, f"plan for {plan.recipient}: {decision.reason}")
                )
                tally.add(t.dead_letters(dl.PLAN_ERROR))
            tally.add(t.DECISIONS(plan.agreement_id, plan.recipient, outcome))
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
            names = sorted(r for r in self.planset.recipients if r not in covered)
            uncovered = "no agreement covers " + ", ".join(names) if names else ""
            self._uncovered[(event_type, partner, frozenset(covered))] = uncovered
        if uncovered:  # default deny, audited once per event for every recipient no agreement covers
            _, value = chain.seal(
                {**DECISION_DEFAULTS, **base, "recipient": "*", "outcome": "denied", "reason": uncovered}
            )
            out.append(Output(topics.AUDIT_DECISIONS, audit_key, value, partition=audit_part))
            tally.add(t.DECISIONS("none", "*", "denied"))
        return shared
