"""Erasure (UK GDPR Art 17, and Art 19: tell every recipient): retract, unview, unlink, unvault.

Per erased event: a tombstone to every recipient that received it, keyed like the original; a
`link.person` retraction so the views drop its contributions. Then the vault and the linker: a
person all of whose records are erased is forgotten whole (`Vault.forget`, and a forget record for
the linker, so their tokens can neither be re-identified nor link new records to what was erased);
a person other controllers still hold records about loses only the erased events' vault rows.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence

from streams.privacy.vault import Vault
from streams.rights import messages
from streams.rights.context import Context, Job, shared_decisions
from streams.rights.store import Resolution

__all__ = ["erase"]


def erase(ctx: Context, job: Job, res: Resolution) -> None:
    rid = job.request.request_id
    for event_id in res.event_ids:
        for d in shared_decisions(job.decisions(ctx.ledger, event_id)):
            key = messages.output_key(d)
            job.step(
                event_id,
                str(d["recipient"]),
                "retract",
                "applied",
                "erased at the controller's request",
                [messages.retraction(str(d["output_topic"]), key, event_id, rid)],
                event_type=d.get("event_type"),
                agreement_id=d.get("agreement_id"),
                output_topic=d["output_topic"],
                output_key=key,
            )
    job.views_retract(res.links, "erase")
    _vault_and_linker(ctx, job, res)


def _vault_and_linker(ctx: Context, job: Job, res: Resolution) -> None:
    rid, partner = job.request.request_id, job.request.partner
    erased = set(res.event_ids)
    persons = res.person_tokens()
    held: dict[str, set[str]] = defaultdict(set)
    for row in ctx.links.by_persons(persons):
        held[row.person_token].add(row.event_id)
    whole = [p for p in persons if held[p] <= erased]  # every record of theirs goes
    if ctx.vault is not None:
        job.effect(functools.partial(_forget, ctx.vault, whole, job.request.requester, rid))
    job.effect(lambda: ctx.links.forget_events(partner, erased))
    kept = len(persons) - len(whole)
    job.step(
        rid,
        "*",
        "unlink",
        "applied",
        f"{len(whole)} people forgotten by the vault and the linker; "
        f"{kept} keep records held by other controllers (only the erased events' rows removed)",
        [messages.linker_forget(whole, rid)] if whole else [],
        person_tokens=whole,
    )


def _forget(vault: Vault, persons: Sequence[str], requester: str, request_id: str) -> None:
    for person in persons:  # each erasure is audited by the vault too (outcome "erased")
        vault.forget(person, requester, f"erasure request {request_id}")
