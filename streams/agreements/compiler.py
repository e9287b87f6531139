"""Compile agreements into plans: one fused closure per (event type, recipient, agreement).

Compiling does every lookup, validation and operator bind up front; `Plan.apply` then only walks
precompiled steps (copy these keys, transform that value, recurse into this record) to build the
output. Fail closed: any exception while applying gives an `error` decision and no output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import fastavro

from streams import topics
from streams.agreements.checks import FREE_TEXT, free_text_kept, select_for
from streams.agreements.conditions import Check, compile_conditions
from streams.agreements.loader import AgreementSet
from streams.agreements.model import Agreement, Condition, Recipient
from streams.agreements.schema import agreement_schema
from streams.agreements.selection import FieldRule
from streams.agreements.steps import Builder, Denied, FieldError, record_builder
from streams.agreements.tree import walk
from streams.agreements.views import ViewPlans, compile_views
from streams.avro.catalogue import Catalogue
from streams.avro.event_types import EventType
from streams.errors import ConfigurationError, SharingBusError
from streams.privacy.areas import AreaLookup
from streams.privacy.keys import KeyRing
from streams.privacy.operators import BindContext, Transform, get_operator

__all__ = ["Decision", "Plan", "PlanSet", "compile_plans"]

Outcome = Literal["shared", "denied", "error"]


@dataclass(slots=True)
class Decision:
    """What a plan decided for one event. Field lists are leaf paths and disjoint: `released`
    as is, `transformed` (pseudonymised or generalised), `withheld` (dropped or invalid)."""

    outcome: Outcome
    output: dict[str, Any] | None
    reason: str
    released: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    transformed: list[str] = field(default_factory=list)
    invalid_identifiers: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Plan:
    """What one recipient receives of one event type from the agreement's owners."""

    recipient: str
    event_type: str
    agreement_id: str
    agreement_version: str
    plan_version: str
    output_schema: dict[str, Any] = field(repr=False)
    output_topic: str
    owners: frozenset[str]
    purpose: str
    lawful_basis: tuple[str, ...]
    special_category_basis: tuple[str, ...]
    retention_days: int
    domain: str
    on_invalid_identifier: str
    fields: Mapping[str, FieldRule] = field(repr=False)  # every leaf path -> its rule (explain, audits)
    conditions: tuple[Condition, ...] = field(repr=False)
    pseudonym_paths: tuple[str, ...]  # released fields holding recipient-domain tokens
    _apply: Callable[[Mapping[str, Any]], Decision] = field(repr=False)

    def apply(self, event: Mapping[str, Any]) -> Decision:
        """Run the plan on one decoded event; never raises (errors become `error` decisions)."""
        return self._apply(event)


class PlanSet:
    """Every compiled plan, by event type and source partner, plus all known recipients."""

    def __init__(
        self,
        plans: Sequence[Plan],
        recipients: Mapping[str, Recipient],
        version: str,
        agreements: AgreementSet,
        views: ViewPlans | None = None,
    ) -> None:
        self.plans: tuple[Plan, ...] = tuple(plans)
        self.views = views if views is not None else ViewPlans()  # grants of combined views
        self.recipients: Mapping[str, Recipient] = recipients
        self.version = version
        self.agreements = agreements
        by_type: dict[str, list[Plan]] = {}
        by_partner: dict[tuple[str, str], list[Plan]] = {}
        for plan in self.plans:
            by_type.setdefault(plan.event_type, []).append(plan)
            for owner in plan.owners:
                by_partner.setdefault((plan.event_type, owner), []).append(plan)
        self._by_type = {k: tuple(v) for k, v in by_type.items()}
        self._by_partner = {k: tuple(v) for k, v in by_partner.items()}

    def plans_for(self, event_type: str, partner: str | None = None) -> Sequence[Plan]:
        """Plans for `event_type` (only those whose agreement `partner` owns, when given)."""
        if partner is None:
            return self._by_type.get(event_type, ())
        return self._by_partner.get((event_type, partner), ())

    def __iter__(self) -> Iterator[Plan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)

    def __repr__(self) -> str:
        return (
            f"PlanSet(version={self.version!r}, plans={len(self.plans)}, recipients={len(self.recipients)})"
        )


def schema_fingerprint(event_type: EventType) -> str:
    """sha256 of the event schema's canonical JSON: a schema change changes every plan version."""
    return hashlib.sha256(json.dumps(event_type.schema, sort_keys=True).encode()).hexdigest()


def compile_plans(
    agreements: AgreementSet,
    catalogue: Catalogue,
    keyring: KeyRing,
    area_lookup: AreaLookup | None = None,
    *,
    failures: list[str] | None = None,
) -> PlanSet:
    """Compile every agreement; ConfigurationError (file and key named) if any cannot bind, unless
    `failures` is given: then that agreement alone is left out (nothing shared under it) and its
    error appended, so one agreement never stops the others (the watcher's way).

    Lapsed agreements compile into plans that deny every event with the lapse as the reason: the
    audit then says, event by event, which agreement stopped which flow and why.
    """
    plans: list[Plan] = []
    for agreement in agreements.agreements:
        plans += _compile_each(agreement, catalogue, keyring, area_lookup, agreements.recipients, failures)
    for lapsed in agreements.lapsed:
        compiled = _compile_each(
            lapsed.agreement, catalogue, keyring, area_lookup, agreements.recipients, failures
        )
        plans += [_denying(plan, lapsed.reason) for plan in compiled]
    h = hashlib.sha256(agreements.version.encode())
    for plan in sorted(plans, key=lambda p: (p.recipient, p.event_type, p.agreement_id)):
        h.update(f"\0{plan.recipient}\0{plan.event_type}\0{plan.plan_version}".encode())
    views = compile_views(agreements.agreements, agreements.recipients, catalogue)
    return PlanSet(plans, agreements.recipients, h.hexdigest()[:16], agreements, views)


def _compile_each(
    agreement: Agreement,
    catalogue: Catalogue,
    keyring: KeyRing,
    area_lookup: AreaLookup | None,
    recipients: Mapping[str, Recipient],
    failures: list[str] | None,
) -> list[Plan]:
    try:
        return [
            _compile(agreement, et_name, catalogue, keyring, area_lookup, recipients)
            for et_name in agreement.event_types
        ]
    except ConfigurationError as exc:
        if failures is None:
            raise
        failures.append(str(exc))
        return []


def _denying(plan: Plan, reason: str) -> Plan:
    """`plan` with every event denied: its agreement has lapsed."""
    denied = f"{plan.agreement_id} v{plan.agreement_version} {reason}"

    def apply(event: Mapping[str, Any]) -> Decision:
        return Decision("denied", None, denied)

    return replace(plan, _apply=apply)


def _compile(
    agreement: Agreement,
    et_name: str,
    catalogue: Catalogue,
    keyring: KeyRing,
    area_lookup: AreaLookup | None,
    recipients: Mapping[str, Recipient],
) -> Plan:
    where = f"{agreement.file}: event_types.{et_name}"
    event_type = catalogue.event_type(et_name)
    tree, selection = select_for(agreement, et_name, catalogue, recipients[agreement.recipient].tier)
    if selection.problems:  # load_agreements reports these first; only reachable with hand-built sets
        p = selection.problems[0]
        raise ConfigurationError(f"{where}.{p.key}: {p.message}")
    rules = selection.rules
    for path in free_text_kept(tree, rules):  # fail closed even for a set that skipped the checks
        raise ConfigurationError(f"{where}.fields.{rules[path].selector or path}: {path}: {FREE_TEXT}")
    nodes = {n.path: n for n in walk(tree)}
    transforms: dict[str, Transform] = {}
    for path, rule in rules.items():
        if rule.transformed:
            info = event_type.fields.get(path)
            input_type = info.avro_type if info is not None else nodes[path].avro_type
            ctx = BindContext(agreement.recipient, agreement.domain, keyring, path, input_type, area_lookup)
            try:
                transforms[path] = get_operator(rule.operator).bind(rule.params, ctx)
            except SharingBusError as exc:
                raise ConfigurationError(f"{where}.fields.{rule.selector}: {exc}") from None
    deny = agreement.on_invalid_identifier == "deny_event"
    schema = agreement_schema(agreement, event_type, tree, rules)
    try:
        fastavro.parse_schema(schema)
    except Exception as exc:  # a bug here must stop the worker, not corrupt a topic
        raise ConfigurationError(f"{where}: derived output schema is invalid: {exc}") from None
    recipient = recipients[agreement.recipient]
    h = hashlib.sha256(agreement.digest.encode())
    h.update(recipient.model_dump_json().encode() + schema_fingerprint(event_type).encode())
    owners = frozenset(o for o in agreement.owners if et_name in catalogue.partners[o].event_types)
    conditions = tuple(agreement.event_types[et_name].where)
    build = record_builder(tree, rules, transforms, deny)
    assert build is not None  # the envelope is always released
    return Plan(
        recipient=agreement.recipient,
        event_type=et_name,
        agreement_id=agreement.id,
        agreement_version=agreement.version,
        plan_version=h.hexdigest()[:12],
        output_schema=schema,
        output_topic=topics.shared(agreement.recipient, et_name),
        owners=owners,
        purpose=agreement.purpose,
        lawful_basis=tuple(agreement.lawful_basis),
        special_category_basis=tuple(agreement.special_category_basis),
        retention_days=agreement.retention_days,
        domain=agreement.domain,
        on_invalid_identifier=agreement.on_invalid_identifier,
        fields=rules,
        conditions=conditions,
        pseudonym_paths=tuple(p for p, r in rules.items() if r.operator == "pseudonymise" and r.released),
        _apply=_applier(agreement, owners, compile_conditions(conditions), build, rules),
    )


def _applier(
    agreement: Agreement,
    owners: frozenset[str],
    check: Check | None,
    build: Builder,
    rules: Mapping[str, FieldRule],
) -> Callable[[Mapping[str, Any]], Decision]:
    """The per-event function: owner check, row conditions, build; every failure a decision."""
    released = [p for p, r in rules.items() if r.released and not r.transformed]
    transformed = [p for p, r in rules.items() if r.transformed]
    withheld = [p for p, r in rules.items() if not r.released]
    shared = f"shared under {agreement.id} v{agreement.version}"
    not_owner = f"source partner is not an owner of {agreement.id}"

    def apply(event: Mapping[str, Any]) -> Decision:
        try:
            if event["envelope"]["source_partner"] not in owners:
                return Decision("denied", None, not_owner)
            if check is not None:
                reason = check(event)
                if reason is not None:
                    return Decision("denied", None, reason)
            invalid: list[tuple[str, str]] = []
            output = build(event, event, invalid)
        except Denied as exc:
            return Decision(
                "denied", None, f"invalid identifier {exc.kind} ({exc.path})", invalid_identifiers=[exc.kind]
            )
        except FieldError as exc:
            return Decision("error", None, exc.reason)
        except Exception as exc:  # fail closed, and keep values out of the reason (it is audited)
            detail = f" {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else ""
            return Decision("error", None, f"plan failed: {type(exc).__name__}{detail}")
        if invalid:
            paths = list(dict.fromkeys(p for p, _ in invalid))
            kinds = list(dict.fromkeys(k for _, k in invalid))
            return Decision(
                "shared",
                output,
                f"{shared}; withheld invalid {', '.join(kinds)}",
                released[:],
                withheld + paths,
                [p for p in transformed if p not in paths],
                kinds,
            )
        return Decision("shared", output, shared, released[:], withheld[:], transformed[:])

    return apply
