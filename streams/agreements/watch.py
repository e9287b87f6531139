"""Pick up changed agreements without restarting the worker, and never swap in a broken set.

`current()` is called per batch, so it must be cheap: at most every `interval` seconds it stats the
directory (names, mtimes, sizes); only when that changed does it hash the contents, and only when
the contents changed does it recompile. A new version that fails to load or compile is logged and
kept in `last_error` while the previous plan set goes on being served (fail safe for a typo, while
the check CLI and the reload metric make the failure visible).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from streams import metrics
from streams.agreements.compiler import PlanSet, compile_plans
from streams.agreements.loader import RECIPIENTS_FILE, agreement_files, directory_digest, load_agreements
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError, SharingBusError
from streams.privacy.areas import AreaLookup
from streams.privacy.keys import KeyRing
from streams.settings import Settings

__all__ = ["PlanWatcher"]

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


class PlanWatcher:
    """The current `PlanSet` of an agreements directory, recompiled when the directory changes."""

    def __init__(
        self,
        source: Settings | Path | str,
        catalogue: Catalogue,
        keyring: KeyRing,
        area_lookup: AreaLookup | None = None,
        interval: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(source.agreements_dir if isinstance(source, Settings) else source)
        self.catalogue = catalogue
        self.keyring = keyring
        self.area_lookup = area_lookup
        self.interval = interval
        self.last_error: str | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._digest = directory_digest(self.directory)
        self._planset = self._compile()  # at start a broken directory is fatal: raise
        self._checked = clock()
        metrics.AGREEMENTS_LOADED.set(len(self._planset.agreements.agreements))

    def current(self) -> PlanSet:
        """The plan set to enforce now (checks the directory at most every `interval` seconds)."""
        now = self._clock()
        if now - self._checked >= self.interval and self._lock.acquire(blocking=False):
            try:  # one caller reloads; concurrent callers keep the plan set they have
                self._checked = now
                self.refresh()
            finally:
                self._lock.release()
        return self._planset

    def refresh(self) -> bool:
        """Reload if the directory changed; True when a new plan set is now served."""
        try:
            signature = self._stat()
            if signature == self._signature:
                return False
            self._signature = signature
            digest = directory_digest(self.directory)
        except (OSError, SharingBusError) as exc:
            self._fail(f"cannot read {self.directory}: {exc}")
            return False
        if digest == self._digest:
            return False
        self._digest = digest
        try:
            planset = self._compile()
        except SharingBusError as exc:
            self._fail(str(exc))
            return False
        self._planset, self.last_error = planset, None
        metrics.PLAN_RELOADS.labels(result="success").inc()
        metrics.AGREEMENTS_LOADED.set(len(planset.agreements.agreements))
        log.info("agreements reloaded: plan set %s (%d plans)", planset.version, len(planset))
        return True

    def _compile(self) -> PlanSet:
        agreements = load_agreements(self.directory, self.catalogue, today=date.today())
        return compile_plans(agreements, self.catalogue, self.keyring, self.area_lookup)

    def _fail(self, message: str) -> None:
        self.last_error = message
        metrics.PLAN_RELOADS.labels(result="failure").inc()
        log.error("agreements not reloaded, still enforcing plan set %s: %s", self._planset.version, message)

    def _stat(self) -> Signature:
        if not self.directory.is_dir():
            raise ConfigurationError(f"agreements directory {self.directory} does not exist")
        files = [*agreement_files(self.directory), self.directory / RECIPIENTS_FILE]
        out = []
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            out.append((f.name, st.st_mtime_ns, st.st_size))
        return tuple(out)
