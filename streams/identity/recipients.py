"""The recipients a token may name, and the tier cap of each, from `agreements/recipients.yaml`.

Re-read when the file changes, so removing a recipient (or lowering its tier) refuses its tokens at
once instead of at their expiry.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from streams.agreements.loader import RECIPIENTS_FILE, Issue, _load_recipients
from streams.agreements.model import Recipient
from streams.errors import ConfigurationError
from streams.identity.errors import AuthError
from streams.identity.principal import Tier, tier_rank

__all__ = ["RecipientCaps"]


class RecipientCaps:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._recipients: Mapping[str, Recipient] = {}
        self._load()

    @classmethod
    def in_dir(cls, agreements_dir: Path) -> RecipientCaps:
        return cls(agreements_dir / RECIPIENTS_FILE)

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            raise ConfigurationError(f"{self.path}: missing: the recipients tokens may name") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            issues: list[Issue] = []
            recipients = _load_recipients(self.path, issues)
            if issues:
                raise ConfigurationError(str(issues[0]))
            self._recipients, self._stamp = recipients, stamp

    def check(self, recipient: str, tier: Tier | None) -> None:
        """AuthError unless `recipient` is listed and `tier` is within its cap."""
        self._load()
        known = self._recipients.get(recipient)
        if known is None:
            raise AuthError(f"unknown recipient {recipient!r}")
        if tier is not None and tier_rank(tier) > tier_rank(known.tier):
            raise AuthError(f"tier {tier} exceeds recipient {recipient}'s cap ({known.tier})")
