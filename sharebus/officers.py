"""The verified officer behind a data subject rights command (`request`, `subject-access`).

Subject rights (access, rectification, erasure, restriction) are the controller's to answer, and
the rights roles file names who answers them for each partner: its officers. The caller is the
token in `SHARINGBUS_IDENTITY_TOKEN`, never a name typed on the command line; a token that names a
partner acts for that partner only. A refusal is one line and exit status 2, as `reidentify`'s.
"""

from __future__ import annotations

from typing import NoReturn

from sharebus.common import fail
from streams.errors import SharingBusError
from streams.identity import AuthError, Principal, TokenVerifier
from streams.rights.roles import NotAuthorised, load_roles
from streams.settings import Settings

__all__ = ["REFUSED_EXIT", "Refusal", "refuse", "verified_officer"]

REFUSED_EXIT = 2


class Refusal(SharingBusError):
    """The caller may not act as an officer of that partner; `caller` is the verified subject, if any."""

    def __init__(self, message: str, caller: str | None) -> None:
        super().__init__(message)
        self.caller = caller


def verified_officer(settings: Settings, partner: str | None, partners: list[str]) -> tuple[Principal, str]:
    """(caller, partner) once the token is verified and the roles file makes it that partner's officer.

    Refusal (one line, with a hint when no token was given); ConfigurationError for a missing or
    invalid roles file or issuer.
    """
    roles = load_roles(settings.rights_roles_path, partners)
    bearer = settings.identity_token.get_secret_value() if settings.identity_token else ""
    caller: Principal | None = None
    try:
        caller = TokenVerifier.from_settings(settings).verify(bearer)
        partner = roles.partner_for(caller, partner, "officer")
        roles.authorise(caller, partner, "officer")
    except (AuthError, NotAuthorised) as exc:
        hint = "" if bearer else ": set SHARINGBUS_IDENTITY_TOKEN to your token"
        raise Refusal(f"{exc}{hint}", caller.subject if caller else None) from None
    return caller, partner


def refuse(what: str, exc: Refusal) -> NoReturn:
    """Exit with `error: <what> refused: <why>` (status 2)."""
    fail(f"{what} refused: {exc}", code=REFUSED_EXIT)
