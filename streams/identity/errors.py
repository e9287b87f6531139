"""The one error of the identity package: a credential refused, with the reason in one line."""

from __future__ import annotations

from streams.errors import SharingBusError


class AuthError(SharingBusError):
    """A token or its claims were refused.

    The message is a single line naming the reason (expired, wrong issuer, ...): it goes back to
    the caller as is, so it never carries the token or key material.
    """
