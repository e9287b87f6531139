"""The restriction set in memory: (partner, linkage token) -> the request that restricted it.

`restriction()` runs for every event, so it must not query PostgreSQL per event: the set is
loaded once, updated at once by the worker that handles a request, and refreshed from the table
when its version changes (polled at most every `refresh_seconds`, so a restriction made on
another worker applies here within that time). If PostgreSQL cannot be reached the last known
set stays in force: restrictions are only ever added through the same table, so none can be
missed while it is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

__all__ = ["Restrictions"]

log = logging.getLogger(__name__)

Loader = Callable[[], tuple[int, dict[str, dict[str, str]]]]


class Restrictions:
    """Cached restriction set; `match` is the per-event check."""

    def __init__(
        self,
        load: Loader,
        version: Callable[[], int],
        refresh_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self._version, self._clock = load, version, clock
        self.refresh_seconds = refresh_seconds
        self.version, self.by_partner = load()
        self._checked = clock()

    def refresh(self) -> None:
        """Reload when the table changed; asks PostgreSQL at most once per `refresh_seconds`."""
        now = self._clock()
        if now - self._checked < self.refresh_seconds:
            return
        self._checked = now
        try:
            if self._version() != self.version:
                self.version, self.by_partner = self._load()
        except Exception as exc:  # keep the last known set in force
            log.warning("restriction refresh failed, keeping the cached set: %s", type(exc).__name__)

    def active(self, partner: str) -> bool:
        return bool(self.by_partner.get(partner))

    def match(self, partner: str, tokens: Iterable[str]) -> str | None:
        """The request id restricting any of `tokens` for `partner`'s events, else None."""
        restricted = self.by_partner.get(partner)
        if not restricted:
            return None
        return next((restricted[t] for t in tokens if t in restricted), None)

    def add(self, partner: str, tokens: Iterable[str], request_id: str) -> None:
        """This worker restricted tokens: effective for its next event, before any refresh."""
        current = self.by_partner.setdefault(partner, {})
        for token in tokens:
            current.setdefault(token, request_id)

    def remove(self, partner: str, tokens: Iterable[str]) -> None:
        current = self.by_partner.get(partner, {})
        for token in tokens:
            current.pop(token, None)
