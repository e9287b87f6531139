"""Which recipients the agreements grant the person view, for the web guard of any worker.

The views and API roles hold no pseudonym keys, so they have no compiled plans; they read the
agreements' `views` sections themselves (`check_agreements`, then `compile_views`), at most every
`interval` seconds and only when the directory's files changed. Each agreement counts on its own:
a broken file grants nothing, the others keep their grants. An unreadable directory grants nothing
(person-level answers fail closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from streams.agreements import check_agreements
from streams.agreements.loader import directory_digest
from streams.agreements.model import PERSON_VIEW
from streams.agreements.views import compile_views
from streams.avro.catalogue import Catalogue
from streams.errors import SharingBusError

__all__ = ["PersonViewReaders"]

log = logging.getLogger(__name__)


class PersonViewReaders:
    def __init__(
        self,
        agreements_dir: Path,
        catalogue: Catalogue,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agreements_dir, self.catalogue, self.interval = agreements_dir, catalogue, interval
        self._clock = clock
        self._checked = float("-inf")
        self._digest: str | None = None
        self._readers: frozenset[str] = frozenset()

    def __call__(self) -> frozenset[str]:
        now = self._clock()
        if now - self._checked >= self.interval:
            self._checked = now
            self._refresh()
        return self._readers

    def _refresh(self) -> None:
        try:
            digest = directory_digest(self.agreements_dir)
            if digest == self._digest:
                return
            agreements, _ = check_agreements(self.agreements_dir, self.catalogue)
            views = compile_views(agreements.agreements, agreements.recipients, self.catalogue)
            self._readers, self._digest = views.readers(PERSON_VIEW), digest
        except (OSError, SharingBusError) as exc:
            log.error("person view grants unreadable, none granted: %s", exc)
            self._readers, self._digest = frozenset(), None
