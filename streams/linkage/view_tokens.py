"""Person tokens in each recipient's own domain, for that recipient's person view.

The linker's `p.` token is one pseudonym for everybody; if it left the bus, any recipient that
re-identified one `p.` token as its own pupil or patient could read every other recipient's facts
about that person under it. So a recipient's profiles are keyed by
`pseudonym(key, "recipient:<id>", "person", p_token)`: a keyed HMAC in that recipient's domain,
different for every recipient, and not computable (nor joinable) without the key. The `p.` token
stays inside the bus (link topics, the linker's state, the owner-only vault).

Computed by the linker (a role that holds key material) and by the subject-rights service inside
the enforcer (to reach the same profiles on erasure); never by the views role, which only ever
receives finished tokens and loads no key at all (docs/combination.md). The key id is pinned like
the linkage key: a rotation must not split every profile in two.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from streams.privacy.keys import KeyRing, pseudonym

__all__ = ["VIEW_KIND", "ViewTokens", "view_domain"]

VIEW_KIND = "person"


def view_domain(recipient: str) -> str:
    """The pseudonym domain of a recipient's person view (the recipient's own domain)."""
    return f"recipient:{recipient}"


class ViewTokens:
    """`tokens(recipient, p_token)` -> that recipient's person token; cached (people recur)."""

    def __init__(self, keyring: KeyRing, kid: str) -> None:
        keyring.key(kid)  # fail closed at start when the pinned key is missing
        self._keyring, self._kid = keyring, kid
        self.token = lru_cache(maxsize=65536)(self._token)

    def _token(self, recipient: str, person_token: str) -> str:
        return pseudonym(self._keyring, view_domain(recipient), VIEW_KIND, person_token, self._kid)

    def expand(self, person_token: str, recipients: Iterable[str]) -> list[str]:
        """Every listed recipient's token for one person (erasure reaches each of their views)."""
        return [self.token(r, person_token) for r in recipients]
