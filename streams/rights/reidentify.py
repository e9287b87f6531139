"""Re-identification under dual control: request -> approve -> answer, or break-glass.

Every caller is a verified token (`streams.identity`), authorised from the rights roles file
(`streams.rights.roles`), never a name it types. A data owner of the owning partner asks, with a
justification; a second, different data owner of the same partner approves (or declines); only
then may the requester collect the answer, once, from the vault's answering function
(`streams.privacy.vault_access`), which re-checks the approval in PostgreSQL and audits the answer.

Break-glass is for an emergency no second owner can wait for: one data owner is answered at once,
the audit row says `break_glass`, a WARNING log line and `sharingbus_reidentifications_total
{outcome="break_glass"}` raise the alarm, and the request stays listed as pending until a second
owner reviews it (`approve`, audited `reviewed`).

Each step (requested, approved, declined, reviewed, refused, granted, not_found, break_glass) is a
row in `reidentification_audit` naming the requester and, where there is one, the approver. A
refusal is audited before it is raised and answers nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg

from streams.errors import SharingBusError
from streams.identity.errors import AuthError
from streams.identity.principal import Principal
from streams.metrics import REIDENTIFICATIONS
from streams.privacy.vault_access import Identity, Outcome, RequestRow, VaultAccess, audit
from streams.rights.roles import NotAuthorised, RightsRoles

__all__ = ["MIN_JUSTIFICATION", "UNVERIFIED", "DualControl", "Identity", "ReidentificationRefused"]

MIN_JUSTIFICATION = 20
UNVERIFIED = "(unverified)"
log = logging.getLogger("sharingbus.rights.reidentify")


class ReidentificationRefused(SharingBusError):
    """Refused (and audited); `reason` says why without revealing anything about the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"re-identification refused: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class _Ask:
    """What an audit row of a step names besides its outcome."""

    requester: str
    partner: str | None
    token: str
    justification: str
    approver: str | None = None
    request_id: int | None = None

    @classmethod
    def of(cls, req: RequestRow, approver: str | None = None) -> _Ask:
        return cls(req.requester, req.partner, req.token, req.justification, approver, req.id)


class DualControl:
    def __init__(self, access: VaultAccess, roles: RightsRoles, verify: Callable[[str], Principal]) -> None:
        self.access, self.roles, self._verify = access, roles, verify

    # --- steps ------------------------------------------------------------------------------------

    def request(self, bearer: str, token: str, partner: str | None, justification: str) -> int:
        """Open a request for `partner`'s own identifiers of `token`; returns its id."""
        with self.access.connect() as conn:
            ask, _ = self._owner(conn, bearer, token, partner, justification)
            request_id = self.access.open_request(
                conn, token, str(ask.partner), ask.requester, ask.justification
            )
            self._audit(conn, "requested", ask, "awaiting a second data owner", request_id=request_id)
        return request_id

    def approve(self, bearer: str, request_id: int) -> str:
        """A second data owner approves a pending request (or reviews a break-glass answer)."""
        with self.access.connect() as conn:
            req, approver = self._second_owner(conn, bearer, request_id)
            if approver.subject == req.requester:
                self._refuse(conn, _Ask.of(req, approver.subject), "the approver must be another data owner")
            if req.state == "pending":
                self.access.decide(conn, req.id, "approved", approver.subject)
                outcome: Outcome = "approved"
            elif req.break_glass and req.approver is None:
                self.access.decide(conn, req.id, req.state, approver.subject)
                outcome = "reviewed"
            else:
                self._refuse(conn, _Ask.of(req, approver.subject), f"request {req.id} is {req.state}")
            self._audit(conn, outcome, _Ask.of(req, approver.subject), f"{outcome} by a second data owner")
        return outcome

    def decline(self, bearer: str, request_id: int, reason: str) -> None:
        """A data owner of the partner (the requester too: a withdrawal) declines a pending request."""
        with self.access.connect() as conn:
            req, owner = self._second_owner(conn, bearer, request_id)
            if req.state != "pending":
                self._refuse(conn, _Ask.of(req, owner.subject), f"request {req.id} is {req.state}")
            self.access.decide(conn, req.id, "declined", owner.subject)
            self._audit(conn, "declined", _Ask.of(req, owner.subject), reason.strip() or "declined")

    def answer(self, bearer: str, request_id: int) -> list[Identity]:
        """The identifiers of an approved request, to its requester, once."""
        with self.access.connect() as conn:
            req = self._load(conn, request_id)
            caller = self._caller(conn, bearer, _Ask.of(req))
            if caller.subject != req.requester:
                self._refuse(conn, _Ask.of(req), "only the requester collects the answer")
            self._authorise(conn, caller, req.partner, _Ask.of(req))
            if req.state != "approved":
                why = {"pending": "a second data owner has not approved it"}.get(req.state, req.state)
                self._refuse(conn, _Ask.of(req), f"request {req.id}: {why}")
            found = self.access.answer(conn, req.id, caller.subject)
        REIDENTIFICATIONS.labels("granted" if found else "not_found").inc()
        return found

    def break_glass(self, bearer: str, token: str, partner: str | None, justification: str) -> list[Identity]:
        """An emergency answer to one data owner: flagged, alerted, and left for a second owner to review."""
        with self.access.connect() as conn:
            ask, _ = self._owner(conn, bearer, token, partner, justification)
            request_id = self.access.open_request(
                conn, token, str(ask.partner), ask.requester, ask.justification, break_glass=True
            )
            found = self.access.answer(conn, request_id, ask.requester)
        REIDENTIFICATIONS.labels("break_glass").inc()
        log.warning(
            "BREAK-GLASS re-identification: request %d by %s for %s answered %d identifiers without a "
            "second approval; a second data owner must review it (sharebus reidentify approve %d)",
            request_id,
            ask.requester,
            ask.partner,
            len(found),
            request_id,
        )
        return found

    def pending(self, bearer: str) -> list[dict[str, Any]]:
        """Requests the caller may decide: its partners' pending ones and unreviewed break-glass."""
        try:
            caller = self._verify(bearer)
        except AuthError as exc:
            raise ReidentificationRefused(f"identity not verified ({exc})") from None
        partners = self.roles.partners_of(caller.subject, "data_owner")
        if caller.partner is not None:
            partners = [p for p in partners if p == caller.partner]
        if not partners:
            raise ReidentificationRefused(f"{caller.subject} is not a data owner of any partner")
        return self.access.pending(partners)

    # --- checks -----------------------------------------------------------------------------------

    def _owner(
        self,
        conn: psycopg.Connection[Any],
        bearer: str,
        token: str,
        partner: str | None,
        justification: str,
    ) -> tuple[_Ask, Principal]:
        justification = (justification or "").strip()
        unverified = _Ask(UNVERIFIED, partner, token, justification)
        caller = self._caller(conn, bearer, unverified)
        ask = _Ask(caller.subject, partner, token, justification)
        try:
            owning = self.roles.partner_for(caller, partner, "data_owner")
        except NotAuthorised as exc:
            self._refuse(conn, ask, str(exc))
        ask = _Ask(caller.subject, owning, token, justification)
        self._authorise(conn, caller, str(ask.partner), ask)
        if len(justification) < MIN_JUSTIFICATION:
            self._refuse(conn, ask, f"justification shorter than {MIN_JUSTIFICATION} characters")
        return ask, caller

    def _second_owner(
        self, conn: psycopg.Connection[Any], bearer: str, request_id: int
    ) -> tuple[RequestRow, Principal]:
        req = self._load(conn, request_id)
        caller = self._caller(conn, bearer, _Ask.of(req, UNVERIFIED))
        self._authorise(conn, caller, req.partner, _Ask.of(req, caller.subject))
        return req, caller

    def _load(self, conn: psycopg.Connection[Any], request_id: int) -> RequestRow:
        req = self.access.request(conn, request_id)
        if req is None:
            raise ReidentificationRefused(f"no re-identification request {request_id}")
        return req

    def _caller(self, conn: psycopg.Connection[Any], bearer: str, ask: _Ask) -> Principal:
        try:
            return self._verify(bearer)
        except AuthError as exc:
            self._refuse(conn, ask, f"identity not verified ({exc})")

    def _authorise(self, conn: psycopg.Connection[Any], caller: Principal, partner: str, ask: _Ask) -> None:
        try:
            self.roles.authorise(caller, partner, "data_owner")
        except NotAuthorised as exc:
            self._refuse(conn, ask, str(exc))

    def _refuse(self, conn: psycopg.Connection[Any], ask: _Ask, reason: str) -> NoReturn:
        conn.rollback()  # nothing of the refused step is kept but its audit row
        self._audit(conn, "refused", ask, reason)
        conn.commit()
        REIDENTIFICATIONS.labels("refused").inc()
        raise ReidentificationRefused(reason)

    @staticmethod
    def _audit(
        conn: psycopg.Connection[Any], outcome: Outcome, ask: _Ask, reason: str, request_id: int | None = None
    ) -> None:
        audit(
            conn,
            outcome,
            requester=ask.requester,
            approver=ask.approver,
            partner=ask.partner,
            token=ask.token,
            justification=ask.justification,
            reason=reason,
            request_id=request_id if request_id is not None else ask.request_id,
        )
