"""Which events a request applies to, and which it must refuse: fixed once, then stored.

A request names events, a person, or both. A person is found through the linkage tokens of the
identifiers given (as the requesting partner holds them) and the linker's records in the vault,
which also brings in the person's records at other agencies. Ownership comes from the audit
ledger (`source_partner` of the event's decisions): only the controller that published an event
may have it rectified, erased or restricted; another controller's events about the same person
are left alone and only counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from streams.rights.context import Context, Job
from streams.rights.links import subject_tokens
from streams.rights.store import Resolution

__all__ = ["NOT_IN_LEDGER", "NOT_OWNER", "resolve"]

NOT_IN_LEDGER = "event not in the audit ledger"
NOT_OWNER = "owned by another controller: only the controller that published an event may ask"


def _owners(
    ctx: Context,
    job: Job,
    candidates: Sequence[str],
    wait_for: Sequence[str],
    deadline: float,
    sleep: Callable[[float], None],
) -> dict[str, str]:
    """event id -> source partner, from the ledger; named events not there yet are waited for until
    `deadline` (epoch seconds): the ledger's PostgreSQL copy trails the topic by a moment."""
    owners: dict[str, str] = {}
    pending = list(candidates)
    while True:
        for event_id in pending:
            records = job.decisions(ctx.ledger, event_id)
            if records:
                owners[event_id] = str(records[0]["source_partner"])
        pending = [e for e in wait_for if e not in owners]
        if not pending or time.time() >= deadline:
            return owners
        sleep(0.5)


def resolve(
    ctx: Context, job: Job, settle_seconds: float, sleep: Callable[[float], None] = time.sleep
) -> Resolution:
    """The stored resolution of this request, or a new one (stored before anything acts on it)."""
    req = job.request
    stored = ctx.store.load(req.request_id)
    if stored is not None:
        return stored
    tokens = subject_tokens(req.subject, req.partner, ctx.keyring, ctx.linkage_kid) if req.subject else []
    by_tokens = ctx.links.by_tokens(tokens)
    person_tokens = {r.person_token for r in by_tokens}
    candidates = list(dict.fromkeys([*req.event_ids, *(r.event_id for r in by_tokens)]))
    recorded = req.recorded_at or datetime.now(UTC)
    owners = _owners(ctx, job, candidates, req.event_ids, recorded.timestamp() + settle_seconds, sleep)
    owned = [e for e in candidates if owners.get(e) == req.partner]
    refused = [(e, NOT_IN_LEDGER if e not in owners else NOT_OWNER) for e in req.event_ids if e not in owned]
    others = sum(
        1 for e in candidates if e not in req.event_ids and owners.get(e, req.partner) != req.partner
    )
    rows = ctx.links.by_events(owned)
    linked = {r.event_id for r in rows}
    links: list[tuple[str, int, str | None]] = [(r.event_id, r.subject_index, r.person_token) for r in rows]
    links += [(e, 0, None) for e in owned if e not in linked]
    # Restriction keys: the identifiers given, and the tokens the person's (or, for events named
    # without a person, every subject's) records were linked on.
    relevant = [r for r in rows if not person_tokens or r.person_token in person_tokens]
    all_tokens = sorted(set(tokens).union(*(r.tokens for r in relevant)))
    return ctx.store.save(
        Resolution(
            request_id=req.request_id,
            partner=req.partner,
            kind=req.kind,
            requester=req.requester,
            reason=req.reason,
            event_ids=owned,
            tokens=all_tokens,
            refused=refused,
            links=links,
            others=others,
            corrections=dict(req.corrections),
        )
    )
