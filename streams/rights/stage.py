"""Subject-rights requests as their own stage, after the enforcer has decided a batch's events.

The enforcer's per-event path (`Enforcer.process_batch`) stays CPU only: a trusted request is
returned in `Batch.requests`, and this stage handles each one (PostgreSQL look-ups, re-reading raw
records, waiting for the events it names to reach the ledger) in the batch thread before the
batch is delivered. Its audit records go on the request's own input-partition chain and its
outputs join the batch's, so they are delivered, retried and committed with it (at-least-once;
a re-run plans the same steps again from the stored resolution). A request that fails is audited
as an error and dead-lettered, so it can be replayed.
"""

from __future__ import annotations

import logging

from streams import deadletter as dl
from streams import metrics
from streams.enforce.engine import STAGE, Batch, Enforcer
from streams.rights.service import SubjectRightsService

__all__ = ["RequestStage"]

log = logging.getLogger(__name__)


class RequestStage:
    """Handles the requests of a decided batch (see the module docstring)."""

    def __init__(self, service: SubjectRightsService) -> None:
        self.service = service

    def run(self, enforcer: Enforcer, batch: Batch) -> None:
        """Handle `batch.requests`, adding their audit records, outputs and dead letters to `batch`."""
        requests, batch.requests = batch.requests, []
        for req in requests:
            audit = enforcer.auditor(req.record, batch.outputs)
            try:
                self.service.handle_request(req.partner, req.event, enforcer.planset, audit, batch.outputs)
            except Exception as exc:  # audited by the service; dead-lettered here so it can be replayed
                log.warning("subject request failed: %s", type(exc).__name__)
                detail = f"internal error: {type(exc).__name__}"
                batch.outputs.append(dl.dead_letter(req.record, STAGE, dl.INTERNAL, detail))
                metrics.count_dead_letter(STAGE, dl.INTERNAL)
