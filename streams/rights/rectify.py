"""Rectification (UK GDPR Art 16, and Art 19): each recipient gets the corrected event in its own form.

The original is re-read from its raw topic (never reconstructed from what a recipient got), the
corrections of this and every earlier rectification of the event are applied, and each recipient
that received the original gets what its CURRENT plan makes of the corrected event: its own
pseudonym domain, its own minimisation, keyed like the original. A correction never tells a
recipient more than the original did: when the corrected event is denied by the plan, no
agreement covers the recipient any more, or the plan now releases fields the original did not,
the recipient gets a retraction instead. The views drop the event's old contributions and the
linker receives the corrected record, from which a fresh fact follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streams.enforce.combine import gate_facts
from streams.enforce.link_facts import VaultRow, write_vault_rows
from streams.enforce.released import released_tokens
from streams.rights import messages
from streams.rights.context import Context, Job, shared_decisions
from streams.rights.corrections import apply_corrections, merge_corrections
from streams.rights.model import RequestRefused
from streams.rights.store import Resolution

__all__ = ["extra_fields", "find_plan", "rectify"]


def find_plan(planset: Any, event_type: str, partner: str, recipient: str, agreement_id: str | None) -> Any:
    """The recipient's current plan for this partner's events of this type (same agreement first)."""
    plans = [p for p in planset.plans_for(event_type, partner) if p.recipient == recipient]
    same = [p for p in plans if p.agreement_id == agreement_id]
    return (same or plans or [None])[0]


def extra_fields(plan: Any, original: Mapping[str, Any]) -> list[str]:
    """Fields `plan` releases that the original decision released in no form.

    Pseudonymised identifiers are not counted: one withheld from the original only because it
    was invalid is exactly what a rectification fixes, and it reaches the recipient as a token.
    """
    before = set(original.get("released") or ()) | set(original.get("transformed") or ())
    return sorted(
        path
        for path, rule in plan.fields.items()
        if rule.released and path not in before and rule.operator != "pseudonymise"
    )


def rectify(ctx: Context, job: Job, res: Resolution, planset: Any) -> None:
    assert res.seq is not None
    erased = ctx.store.erased(res.event_ids, res.seq)
    rows: list[VaultRow] = []  # the corrected identifiers, for the vault
    for event_id in res.event_ids:
        if event_id in erased:
            job.step(event_id, "*", "correct", "denied", "the event was erased by an earlier request")
            continue
        records = job.decisions(ctx.ledger, event_id)
        located = next((r for r in records if r.get("source_offset") is not None and r.get("chain")), None)
        if located is None:
            job.step(event_id, "*", "correct", "denied", "no decision record locates the original")
            continue
        event_type = str(located["event_type"])
        try:
            original = ctx.raw.read(str(located["chain"]), int(located["source_offset"]))
            layers = [*ctx.store.earlier_corrections(event_id, res.seq), res.corrections]
            corrected = apply_corrections(
                ctx.catalogue, res.partner, event_type, original, merge_corrections(layers)
            )
        except RequestRefused as exc:
            job.step(event_id, "*", "correct", "denied", exc.reason, event_type=event_type)
            continue
        for decision in shared_decisions(records):
            _correct(ctx, job, planset, event_id, event_type, corrected, decision)
        job.views_retract([link for link in res.links if link[0] == event_id], "rectify")
        rows += _relink(ctx, job, planset, event_id, event_type, corrected)
    if rows and ctx.vault is not None:  # after every old row is gone (effects run in order)
        vault = ctx.vault
        job.effect(lambda: write_vault_rows(vault, rows))


def _correct(
    ctx: Context,
    job: Job,
    planset: Any,
    event_id: str,
    event_type: str,
    corrected: Mapping[str, Any],
    original: Mapping[str, Any],
) -> None:
    rid, recipient = job.request.request_id, str(original["recipient"])
    topic, key = str(original["output_topic"]), messages.output_key(original)
    where = {"event_type": event_type, "output_topic": topic, "output_key": key}

    def retract(reason: str) -> None:
        out = messages.retraction(topic, key, event_id, rid)
        job.step(event_id, recipient, "retract", "applied", reason, [out], **where)

    plan = find_plan(planset, event_type, job.request.partner, recipient, original.get("agreement_id"))
    if plan is None:
        retract("no agreement covers the recipient now: retracted instead of corrected")
        return
    decision = plan.apply(corrected)
    if decision.outcome != "shared" or decision.output is None:
        retract(f"the corrected event is not shared under {plan.agreement_id}: {decision.reason}")
        return
    extra = extra_fields(plan, original)
    if extra:
        retract(f"{plan.agreement_id} now releases fields the original did not ({', '.join(extra)})")
        return
    try:
        value = ctx.encode(plan, decision.output)
    except Exception as exc:  # fail closed, as the enforcer does
        retract(f"the corrected output does not encode: {type(exc).__name__}")
        return
    job.step(
        event_id,
        recipient,
        "correct",
        "applied",
        f"corrected under {plan.agreement_id} v{plan.agreement_version}",
        [messages.correction(topic, key, value, event_id, rid)],
        agreement_id=plan.agreement_id,
        agreement_version=plan.agreement_version,
        plan_version=plan.plan_version,
        released=list(decision.released),
        transformed=list(decision.transformed),
        withheld=list(decision.withheld),
        subject_tokens=released_tokens(decision.output, plan.pseudonym_paths),
        **where,
    )


def _relink(
    ctx: Context, job: Job, planset: Any, event_id: str, event_type: str, corrected: Mapping[str, Any]
) -> list[VaultRow]:
    """The corrected event's link records (fresh facts follow from the linker) and vault rows.

    The corrected facts pass the same view grants as the enforcer's (`streams.enforce.combine`).
    """
    if ctx.link_facts is None:
        return []
    partner = job.request.partner
    records, rows = ctx.link_facts(partner, event_type, corrected)
    facts: Sequence[dict[str, Any]] = gate_facts(planset, partner, event_type, corrected, records)
    job.effect(lambda: ctx.links.replace_identities(partner, event_id))
    job.step(
        event_id,
        "*",
        "relink",
        "applied",
        f"{len(facts)} corrected link record(s) sent to the linker",
        [messages.relink(f) for f in facts],
        event_type=event_type,
    )
    return rows
