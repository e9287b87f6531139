"""Person tokens in each recipient's own domain, for that recipient's person view.

The linker's `p.` token is one pseudonym for everybody; if it left the bus, any recipient that
re-identified one `p.` token as its own pupil or patient could read every other recipient's facts
about that person under it. So a recipient's profiles are keyed by
`<kid>.HMAC(key of "recipient:<id>", "person" | p_token)`: a keyed token in that recipient's domain,
different for every recipient, and not computable (nor joinable) without that domain's key. The
`p.` token stays inside the bus (link topics, the linker's state, the owner-only vault).

Computed by the linker with the derived `recipient:<id>` domain keys only (`DomainKeys`, no master
key) and by the subject-rights service inside the enforcer (with its key ring) to reach the same
profiles on erasure; never by the views role, which receives finished tokens and holds no key
(docs/combination.md). The key id is pinned like the linkage key: a rotation must not split every
profile in two.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import yaml

from streams.agreements.model import RecipientsFile
from streams.errors import ConfigurationError
from streams.privacy.domain_keys import DomainKeys
from streams.privacy.keys import KeyRing

__all__ = ["VIEW_KIND", "ViewTokens", "view_domain", "view_domains", "view_keys"]

VIEW_KIND = "person"


class MacSource(Protocol):
    """`KeyRing` or `DomainKeys`: a keyed HMAC per (domain, kind, key id)."""

    def mac(self, domain: str, kind: str, kid: str | None = None) -> hmac.HMAC: ...

    def require(self, kid: str) -> None: ...


def view_domain(recipient: str) -> str:
    """The pseudonym domain of a recipient's person view (the recipient's own domain)."""
    return f"recipient:{recipient}"


def view_domains(agreements_dir: Path) -> list[str]:
    """The view domains of every recipient in `recipients.yaml` (a person view may be granted later)."""
    path = agreements_dir / "recipients.yaml"
    try:
        doc = RecipientsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: cannot read the recipients ({type(exc).__name__})") from None
    return [view_domain(r.id) for r in doc.recipients]


def view_keys(ring: KeyRing, agreements_dir: Path, kid: str) -> DomainKeys:
    """The linker's keys: every recipient's view domain key of `kid`, derived; no master."""
    return ring.domain_keys(view_domains(agreements_dir), kid)


class ViewTokens:
    """`token(recipient, p_token)` -> that recipient's person token; cached (people recur)."""

    def __init__(self, keys: MacSource, kid: str) -> None:
        keys.require(kid)  # fail closed at start when the pinned key is missing
        self._keys, self._kid = keys, kid
        self.token = lru_cache(maxsize=65536)(self._token)

    def _token(self, recipient: str, person_token: str) -> str:
        h = self._keys.mac(view_domain(recipient), VIEW_KIND, self._kid)
        h.update(person_token.encode())
        return f"{self._kid}." + base64.b32encode(h.digest())[:26].decode("ascii").lower()

    def expand(self, person_token: str, recipients: Iterable[str]) -> list[str]:
        """Every listed recipient's token for one person (erasure reaches each of their views)."""
        return [self.token(r, person_token) for r in recipients]
