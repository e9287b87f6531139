"""The `SubjectRights` the enforcer calls: requests in, retractions/corrections/restrictions out.

For every event the enforcer asks `restriction` whether the event's subject is restricted (from
memory; `refresh` reloads the set before a batch). Events of type `bus.subject_request` skip the
plans: the request stage (`streams.rights.stage`) calls `handle_request` for them after the batch's
events are decided, in the enforcer's batch thread, so PostgreSQL look-ups block only that thread.

Every step is audited on the request's own chain (kind "request": request id and kind, event,
recipient, action, outcome, reason) and recorded in `subject_request_actions`; a request or event
that cannot be acted on is refused with outcome "denied" and a reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from streams.agreements.compiler import PlanSet
from streams.deadletter import Output
from streams.rights.context import Context, Job
from streams.rights.erase import erase
from streams.rights.links import subject_tokens, subjects_of
from streams.rights.model import REQUEST_EVENT_TYPE, RequestRefused, SubjectRequest, parse_request
from streams.rights.rectify import rectify
from streams.rights.resolve import resolve
from streams.rights.restrict import restrict, unrestrict
from streams.rights.store import Resolution

__all__ = ["SubjectRightsService"]

log = logging.getLogger(__name__)

AuditFn = Callable[..., None]


class SubjectRightsService:
    """Implements `streams.enforce.engine.SubjectRights`; build it with `streams.rights.build_rights`."""

    request_event_type = REQUEST_EVENT_TYPE

    def __init__(
        self, ctx: Context, *, settle_seconds: float = 10.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.ctx = ctx
        self.settle_seconds = settle_seconds
        self._sleep = sleep

    # --- per event ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the restriction set if another worker changed it (before a batch: may query)."""
        self.ctx.restrictions.refresh()

    def restriction(self, partner: str, event_type: str, event: Mapping[str, Any]) -> str | None:
        """Why this event may not be shared (its subject is restricted by `partner`), else None."""
        restrictions = self.ctx.restrictions
        if not restrictions.active(partner):
            return None  # the common case: no linkage tokens computed at all
        for subject in subjects_of(event):
            tokens = subject_tokens(subject, partner, self.ctx.keyring, self.ctx.linkage_kid)
            request_id = restrictions.match(partner, tokens)
            if request_id is not None:
                return f"the subject's processing is restricted (request {request_id})"
        return None

    # --- requests ----------------------------------------------------------------------------------

    def handle_request(
        self, partner: str, event: Mapping[str, Any], planset: PlanSet, audit: AuditFn, out: list[Output]
    ) -> None:
        request_id = str((event.get("envelope") or {}).get("event_id", ""))
        try:
            request = parse_request(partner, event)
        except RequestRefused as exc:
            audit(
                kind="request",
                request_id=request_id,
                request_kind=str(event.get("kind") or "").lower(),
                source_partner=partner,
                event_id=request_id,
                recipient="*",
                action="request",
                outcome="denied",
                reason=exc.reason,
            )
            return
        job = Job(request)
        views = getattr(planset, "views", None)
        if self.ctx.view_tokens is not None and views is not None:
            # Person views are keyed by each recipient's own token: erasure must reach every one.
            tokens, recipients = self.ctx.view_tokens, views.profile_recipients
            job.expand = lambda person: tokens.expand(person, recipients)
        try:
            res = resolve(self.ctx, job, self.settle_seconds, self._sleep)
            self._dispatch(job, res, planset)
            job.commit(audit, out, self.ctx.store)
        except Exception as exc:
            # Nothing planned was sent; the enforcer dead-letters the request so it can be replayed.
            log.exception("subject request %s failed", request_id)
            audit(**_summary(request, None, "error", f"request failed: {type(exc).__name__}"))
            raise

    def _dispatch(self, job: Job, res: Resolution, planset: PlanSet) -> None:
        rid = job.request.request_id
        for event_id, reason in res.refused:
            job.step(event_id, "*", "refuse", "denied", reason)
        kind = job.request.kind
        if kind in ("erase", "rectify") and not res.event_ids:
            job.step(rid, "*", kind, "denied", "no event of this controller to apply it to")
        elif kind == "erase":
            erase(self.ctx, job, res)
        elif kind == "rectify":
            rectify(self.ctx, job, res, planset)
        elif kind == "restrict":
            restrict(self.ctx, job, res)
        else:
            unrestrict(self.ctx, job, res)
        applied = any(s.fields["outcome"] == "applied" for s in job.steps)
        summary = _summary(
            job.request,
            res,
            "applied" if applied else "denied",
            f"{kind}: {len(res.event_ids)} event(s) of {res.partner}, {len(res.refused)} refused, "
            f"{res.others} about the subject held by other controllers (untouched)",
        )
        job.add(summary)


def _summary(request: SubjectRequest, res: Resolution | None, outcome: str, reason: str) -> dict[str, Any]:
    return {
        "kind": "request",
        "request_id": request.request_id,
        "request_kind": request.kind,
        "source_partner": request.partner,
        "requester": request.requester,
        "justification": request.reason,
        "event_id": request.request_id,
        "recipient": "*",
        "action": "request",
        "outcome": outcome,
        "reason": reason,
        "event_ids": list(res.event_ids) if res else list(request.event_ids),
        "refused": [e for e, _ in res.refused] if res else [],
        "other_controllers": res.others if res else 0,
    }
