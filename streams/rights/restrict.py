"""Restriction (UK GDPR Art 18): while it stands, the controller's new events about the person are
not shared (the enforcer denies and audits them); lifting it lets new events flow again.

Restrictions are kept per controller: Art 18 binds the controller the subject asked, so one
partner's restriction never stops another controller's lawful sharing (nor can a partner use one
to block another's flows). What is already shared stays where it is: ask for erasure for that.
"""

from __future__ import annotations

from streams.rights.context import Context, Job
from streams.rights.store import Resolution

__all__ = ["restrict", "unrestrict"]


def restrict(ctx: Context, job: Job, res: Resolution) -> None:
    rid, partner = job.request.request_id, job.request.partner
    if not res.tokens:
        job.step(rid, "*", "restrict", "denied", "no linkage tokens for the subject: nothing to restrict on")
        return
    tokens = list(res.tokens)
    job.effect(lambda: ctx.store.restrict(partner, tokens, rid))
    job.effect(lambda: ctx.restrictions.add(partner, tokens, rid))
    job.step(
        rid, "*", "restrict", "applied", f"{len(tokens)} linkage tokens restricted for {partner}'s events"
    )


def unrestrict(ctx: Context, job: Job, res: Resolution) -> None:
    rid, partner = job.request.request_id, job.request.partner
    if not res.tokens:
        job.step(rid, "*", "unrestrict", "denied", "no linkage tokens for the subject: nothing to lift")
        return
    tokens = list(res.tokens)
    job.effect(lambda: ctx.store.unrestrict(partner, tokens))
    job.effect(lambda: ctx.restrictions.remove(partner, tokens))
    job.step(rid, "*", "unrestrict", "applied", f"restriction lifted on {len(tokens)} linkage tokens")
