"""Keep the enforced plan set in step with the agreements directory and the calendar, on a timer.

A thread (`start`) looks every `interval` seconds, whether or not events arrive, so a revocation,
a lapse or an alert never waits for traffic; `current()` only returns the plan set in force and
never touches the disk. Each look stats the directory (names, mtimes, sizes) and notes the date;
only when either changed does it reload, and each agreement then stands on its own
(`check_agreements` with the previous set): a broken file keeps only its own previous version,
a removed file or recipient stops its flows at once, an agreement past its review date or expiry
is compiled to deny (and audit) every event it covers. Metrics say how many agreements are
enforced, lapsed and broken (alert rules in deploy/prometheus/alerts.yml).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

from streams import metrics
from streams.agreements.compiler import PlanSet, compile_plans
from streams.agreements.loader import (
    RECIPIENTS_FILE,
    AgreementSet,
    Issue,
    agreement_files,
    check_agreements,
    directory_digest,
    refuse_start,
)
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError, SharingBusError
from streams.privacy.areas import AreaLookup
from streams.privacy.keys import KeyRing
from streams.settings import Settings

__all__ = ["PlanWatcher"]

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


class PlanWatcher:
    """The current `PlanSet` of an agreements directory, reloaded when the files or the date change."""

    def __init__(
        self,
        source: Settings | Path | str,
        catalogue: Catalogue,
        keyring: KeyRing,
        area_lookup: AreaLookup | None = None,
        interval: float = 2.0,
        *,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.directory = Path(source.agreements_dir if isinstance(source, Settings) else source)
        self.catalogue = catalogue
        self.keyring = keyring
        self.area_lookup = area_lookup
        self.interval = interval
        self.last_error: str | None = None  # every error of the last load, one per line
        self._today = today
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signature = self._stat()  # a missing directory is fatal at start
        self._day = today()
        self._digest = directory_digest(self.directory)
        agreements, issues = check_agreements(self.directory, catalogue, today=self._day)
        refuse_start(issues)
        self._agreements = agreements
        self._planset = self._compile(agreements, issues)

    def current(self) -> PlanSet:
        """The plan set in force (cheap: never reads the directory)."""
        return self._planset

    def start(self) -> None:
        """Look at the directory and the date every `interval` seconds in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="agreements-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any one bad look; the next one retries
                log.exception("agreements watcher: look at %s failed", self.directory)

    def refresh(self) -> bool:
        """Reload if the directory or the date changed; True when a new plan set is now served.

        What was looked at is remembered only once the reload succeeded, so a look that raises is
        repeated at the next tick instead of leaving the old plan set in force.
        """
        with self._lock:
            try:
                signature, day = self._stat(), self._today()
                if signature == self._signature and day == self._day:
                    return False
                digest = directory_digest(self.directory)
            except (OSError, SharingBusError) as exc:  # the directory went away: so did the agreements
                return self._gone(str(exc))
            if digest == self._digest and day == self._day:
                self._signature = signature  # touched, not changed
                return False
            agreements, issues = check_agreements(
                self.directory, self.catalogue, today=day, previous=self._agreements
            )
            planset = self._compile(agreements, issues)
            self._agreements, self._planset = agreements, planset
            self._signature, self._digest, self._day = signature, digest, day
            log.info("agreements reloaded: plan set %s (%d plans)", planset.version, len(planset))
            return True

    def _gone(self, why: str) -> bool:
        """Enforce nothing (every event denied and audited) while the directory cannot be read."""
        if self._signature == () and self._digest == "":
            return False  # already so
        self._signature, self._digest = (), ""
        self._agreements = AgreementSet(self.directory, (), self._agreements.recipients, "none")
        self._planset = compile_plans(self._agreements, self.catalogue, self.keyring)
        self.last_error = f"cannot read {self.directory}: {why}"
        metrics.AGREEMENTS_LOADED.set(0)
        metrics.PLAN_RELOADS.labels(result="failure").inc()
        log.error("no agreement is enforced (every event is denied): %s", self.last_error)
        return True

    def _compile(self, agreements: AgreementSet, issues: list[Issue]) -> PlanSet:
        """Compile what stands, each agreement on its own; report the rest (log, metrics)."""
        failures: list[str] = []
        planset = compile_plans(agreements, self.catalogue, self.keyring, self.area_lookup, failures=failures)
        errors = [str(i) for i in issues if i.severity == "error" and not i.lapse] + failures
        for x in agreements.lapsed:
            log.warning("agreement %s (%s) lapsed: %s", x.agreement.id, x.agreement.file, x.reason)
        for error in errors:
            log.error("agreement not applied: %s", error)
        broken = {i.file for i in issues if i.severity == "error" and not i.lapse}
        self.last_error = "\n".join(errors) or None
        metrics.AGREEMENTS_LOADED.set(len(agreements.agreements))
        metrics.AGREEMENTS_LAPSED.set(len(agreements.lapsed))
        metrics.AGREEMENTS_INVALID.set(len(broken) + len(failures))
        metrics.PLAN_RELOADS.labels(result="failure" if errors else "success").inc()
        return planset

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
