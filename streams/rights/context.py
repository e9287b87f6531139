"""What every request handler works with: the dependencies, and a `Job` that collects a request's
steps so nothing is sent until all of it has been worked out.

A handler only *plans*: it adds steps (an audit record plus the outputs it justifies) and effects
(PostgreSQL writes such as erasing vault rows). `Job.commit` then runs the effects, records the
actions, and only then appends audit records and outputs for the enforcer to deliver. An error
while planning therefore sends nothing, and a re-run (the enforcer re-decides a batch whose
delivery failed) plans the same steps again from the stored resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from fastavro import parse_schema

from streams import topics
from streams.avro.catalogue import Catalogue
from streams.avro.serde import encode
from streams.deadletter import Output
from streams.enforce.audit_store import AuditStore
from streams.enforce.link_facts import LinkFacts
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.keys import KeyRing
from streams.privacy.vault import Vault
from streams.rights import messages
from streams.rights.links import LinkIndex
from streams.rights.model import SubjectRequest
from streams.rights.raw import RawReader
from streams.rights.restrictions import Restrictions
from streams.rights.store import RightsStore

__all__ = ["KIND_REQUEST", "Context", "Job", "OutputSchemas", "shared_decisions"]

KIND_REQUEST = "request"  # audit record kind of every request step (the audit sink skips them)
AuditFn = Callable[..., None]


class OutputSchemas(Protocol):
    def id_for(self, subject: str, schema: dict[str, Any]) -> int: ...


def shared_decisions(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Decisions that put the event on a recipient's topic (only those need a retraction)."""
    return [r for r in records if r.get("outcome") == "shared" and r.get("output_topic")]


@dataclass
class Context:
    """The service's dependencies; blocking calls are fine (the enforcer runs batches in a thread)."""

    catalogue: Catalogue
    keyring: KeyRing
    linkage_kid: str
    store: RightsStore
    ledger: AuditStore
    links: LinkIndex
    vault: Vault | None
    raw: RawReader
    schemas: OutputSchemas
    restrictions: Restrictions
    link_facts: LinkFacts | None = None
    view_tokens: ViewTokens | None = None  # recipients' person-view tokens (erasure reaches them)
    _writers: dict[tuple[str, str], tuple[Any, int]] = field(default_factory=dict)

    def encode(self, plan: Any, output: Mapping[str, Any]) -> bytes:
        """`output` framed with the registry id of `plan`'s output schema (registered if new)."""
        key = (plan.output_topic, plan.plan_version)
        writer = self._writers.get(key)
        if writer is None:
            schema_id = self.schemas.id_for(topics.value_subject(plan.output_topic), plan.output_schema)
            writer = self._writers[key] = (parse_schema(plan.output_schema), schema_id)
        return encode(writer[0], writer[1], output)


@dataclass
class _Step:
    fields: dict[str, Any]
    outputs: list[Output]


class Job:
    """One request's planned steps and effects (see the module docstring)."""

    def __init__(self, request: SubjectRequest) -> None:
        self.request = request
        self.steps: list[_Step] = []
        self.effects: list[Callable[[], Any]] = []
        self._decisions: dict[str, list[dict[str, Any]]] = {}
        # A person token -> the tokens its person views are kept under (None: the token itself).
        self.expand: Callable[[str], list[str]] | None = None

    def decisions(self, ledger: AuditStore, event_id: str) -> list[dict[str, Any]]:
        """The event's decision records in the audit ledger (cached for this request once found)."""
        records = self._decisions.get(event_id)
        if records is None:
            records = ledger.by_event(event_id)
            if records:
                self._decisions[event_id] = records
        return records

    def step(
        self,
        event_id: str,
        recipient: str,
        action: str,
        outcome: str,
        reason: str,
        outputs: Iterable[Output] = (),
        **extra: Any,
    ) -> None:
        req = self.request
        fields = {
            "kind": KIND_REQUEST,
            "request_id": req.request_id,
            "request_kind": req.kind,
            "source_partner": req.partner,
            "requester": req.requester,
            "event_id": event_id,
            "recipient": recipient,
            "action": action,
            "outcome": outcome,
            "reason": reason,
            **extra,
        }
        self.add(fields, outputs)

    def add(self, fields: dict[str, Any], outputs: Iterable[Output] = ()) -> None:
        """A step with its audit record already built."""
        self.steps.append(_Step(fields, list(outputs)))

    def views_retract(self, links: Iterable[tuple[str, int, str | None]], cause: messages.Cause) -> None:
        """One step per `link.person` retraction (one per person token the events were linked to)."""
        pairs = ((e, p) for e, _, p in links)
        for out in messages.views_retractions(pairs, self.request.request_id, cause, self.expand):
            doc = orjson.loads(out.value or b"{}")
            ids = list(doc["event_ids"])
            self.step(
                ids[0],
                "*",
                "views_retract",
                "applied",
                f"{len(ids)} event(s) removed from the views ({cause})",
                [out],
                event_ids=ids,
                person_token=doc["person_token"],
            )

    def effect(self, fn: Callable[[], Any]) -> None:
        self.effects.append(fn)

    def commit(self, audit: AuditFn, out: list[Output], store: RightsStore) -> None:
        for fn in self.effects:
            fn()
        actions = {
            (str(s.fields["event_id"]), str(s.fields["recipient"]), str(s.fields["action"])): (
                str(s.fields["outcome"]),
                str(s.fields["reason"]),
            )
            for s in self.steps
        }  # one row per (event, recipient, action): the last step of a kind wins
        store.record_actions((self.request.request_id, *k, *v) for k, v in actions.items())
        for s in self.steps:
            audit(**s.fields)
            out.extend(s.outputs)
