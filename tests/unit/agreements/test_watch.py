"""PlanWatcher: each agreement loads and is enforced on its own, on a timer, and lapses by the calendar.

The attacks (issue 17, finding 7): any error anywhere in the directory kept the whole old plan set,
so deleting `education-yjs.yaml` beside an unfinished draft left `reading_yjs_team` receiving
exclusions; one agreement past its review date stopped the worker from starting at all, while a
running worker enforced it for ever; reload ran only when events arrived.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.agreements import PlanWatcher
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError
from streams.privacy.keys import KeyRing
from streams.settings import Settings

from .conftest import base_agreement

START = date(2026, 6, 1)


class Metrics:
    """Stands in for streams.metrics: records what the watcher reports instead of the global registry."""

    def __init__(self) -> None:
        self.reloads: list[str] = []
        self.values: dict[str, list[int]] = {"loaded": [], "lapsed": [], "invalid": []}
        self.AGREEMENTS_LOADED = _Gauge(self.values["loaded"])
        self.AGREEMENTS_LAPSED = _Gauge(self.values["lapsed"])
        self.AGREEMENTS_INVALID = _Gauge(self.values["invalid"])
        self.PLAN_RELOADS = self

    def labels(self, result: str) -> Metrics:
        self.reloads.append(result)
        return self

    def inc(self) -> None:
        pass


class _Gauge:
    def __init__(self, values: list[int]) -> None:
        self.values = values

    def set(self, n: int) -> None:
        self.values.append(n)


@pytest.fixture(autouse=True)
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    fake = Metrics()
    monkeypatch.setattr("streams.agreements.watch.metrics", fake)
    return fake


class Today:
    def __init__(self) -> None:
        self.day = START

    def __call__(self) -> date:
        return self.day


Watched = tuple[PlanWatcher, Path, Today]


def _watch(d: Path, catalogue: Catalogue, keyring: KeyRing) -> Watched:
    today = Today()
    return PlanWatcher(d, catalogue, keyring, interval=2.0, today=today), d, today


@pytest.fixture
def watched(catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]) -> Watched:
    return _watch(agreement_dir({"test.yaml": base_agreement()}), catalogue, keyring)


def _stop_search(**changes: Any) -> dict[str, Any]:
    doc = base_agreement(
        id="stop-search", event_types={"police.stop_search": {"fields": {"outcome": "keep"}}}
    )
    doc.update(changes)
    return doc


def _write(path: Path, doc: dict[str, Any] | str) -> None:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _recipients_for(watcher: PlanWatcher, event_type: str, partner: str) -> dict[str, str]:
    return {p.recipient: p.agreement_id for p in watcher.current().plans_for(event_type, partner)}


def test_unchanged_directory_serves_the_same_plan_set(watched: Watched) -> None:
    watcher, _, _ = watched
    first = watcher.current()
    assert watcher.refresh() is False
    assert watcher.current() is first and watcher.last_error is None


def test_an_edit_is_picked_up(watched: Watched) -> None:
    watcher, d, _ = watched
    first = watcher.current()
    (d / "test.yaml").write_text((d / "test.yaml").read_text().replace("version: '1'", "version: '2.0'"))
    assert watcher.current() is first  # current() never reads the directory
    assert watcher.refresh() is True
    second = watcher.current()
    assert second is not first and second.version != first.version
    assert [p.agreement_version for p in second] == ["2.0"]


def test_a_broken_edit_keeps_that_agreements_previous_version(watched: Watched, metrics: Metrics) -> None:
    watcher, d, _ = watched
    first = watcher.current()
    (d / "test.yaml").write_text(
        (d / "test.yaml").read_text().replace("crime_category: keep", "crime_categry: keep")
    )
    assert watcher.refresh() is True
    kept = watcher.current()
    assert [p.plan_version for p in kept] == [p.plan_version for p in first]
    assert watcher.last_error is not None
    assert (
        "test.yaml: event_types.police.crime_recorded.fields.crime_categry: no such field"
        in watcher.last_error
    )
    (d / "test.yaml").write_text(
        (d / "test.yaml").read_text().replace("crime_categry: keep", "firearm: keep")
    )
    assert watcher.refresh() is True
    fixed = watcher.current()
    assert watcher.last_error is None
    assert metrics.reloads == ["success", "failure", "success"]
    assert metrics.values["invalid"] == [0, 1, 0] and metrics.values["loaded"] == [1, 1, 1]
    assert "firearm" in fixed.plans[0].fields and fixed.plans[0].fields["firearm"].released


def test_a_new_file_is_picked_up(watched: Watched) -> None:
    watcher, d, _ = watched
    _write(d / "stop-search.yaml", _stop_search())
    watcher.refresh()
    assert {p.event_type for p in watcher.current()} == {"police.crime_recorded", "police.stop_search"}


def test_a_removal_applies_at_once_even_beside_a_broken_draft(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> None:
    """The issue's case: education-yjs.yaml deleted while an unfinished draft sits beside it."""
    watcher, d, _ = _watch(agreement_dir(examples=True), catalogue, keyring)
    assert _recipients_for(watcher, "education.exclusion", "reading_schools") == {
        "reading_yjs_team": "education-to-reading-yjs"
    }
    _write(d / "draft-housing.yaml", "id: housing-draft\ntitle: [unfinished\n")
    (d / "education-yjs.yaml").unlink()
    watcher.refresh()
    assert _recipients_for(watcher, "education.exclusion", "reading_schools") == {}
    assert watcher.last_error is not None and "draft-housing.yaml" in watcher.last_error
    # Every other agreement still shares.
    assert _recipients_for(watcher, "police.crime_recorded", "thames_valley_police") == {
        "vru_analysts": "police-to-vru-analysts"
    }


def test_a_removed_recipient_stops_its_agreements_even_when_their_file_breaks(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> None:
    watcher, d, _ = _watch(agreement_dir(examples=True), catalogue, keyring)
    recipients = yaml.safe_load((d / "recipients.yaml").read_text())
    recipients["recipients"] = [r for r in recipients["recipients"] if r["id"] != "reading_yjs_team"]
    _write(d / "recipients.yaml", recipients)
    watcher.refresh()
    assert _recipients_for(watcher, "education.exclusion", "reading_schools") == {}
    assert watcher.current().plans_for("police.crime_recorded", "thames_valley_police")


def test_a_broken_file_with_no_previous_version_shares_nothing_and_others_start(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path], metrics: Metrics
) -> None:
    d = agreement_dir({"test.yaml": base_agreement(), "broken.yaml": _stop_search(recipient="nobody")})
    watcher, _, _ = _watch(d, catalogue, keyring)
    assert {p.event_type for p in watcher.current()} == {"police.crime_recorded"}
    assert (
        watcher.last_error is not None and "broken.yaml: recipient: unknown recipient" in watcher.last_error
    )
    assert metrics.values["invalid"] == [1]


def test_a_passed_review_date_stops_that_agreement_alone_at_start(
    catalogue: Catalogue,
    keyring: KeyRing,
    agreement_dir: Callable[..., Path],
    make_event: Any,
    metrics: Metrics,
) -> None:
    d = agreement_dir(
        {
            "test.yaml": base_agreement(review_date=str(START - timedelta(days=1))),
            "stop-search.yaml": _stop_search(),
        }
    )
    watcher, _, _ = _watch(d, catalogue, keyring)  # on main: ConfigurationError, the worker never starts
    (lapsed,) = watcher.current().plans_for("police.crime_recorded", "thames_valley_police")
    decision = lapsed.apply(make_event("police.crime_recorded"))
    assert decision.outcome == "denied" and decision.output is None
    passed = "review date 2026-05-31 has passed: nothing is shared under it until it is reviewed"
    assert decision.reason == f"test-agreement v1 {passed}"
    (other,) = watcher.current().plans_for("police.stop_search", "thames_valley_police")
    assert other.apply(make_event("police.stop_search")).outcome == "shared"
    assert metrics.values["lapsed"] == [1] and metrics.values["loaded"] == [1]


def test_a_running_watcher_lapses_an_agreement_when_its_day_passes(
    catalogue: Catalogue,
    keyring: KeyRing,
    agreement_dir: Callable[..., Path],
    make_event: Any,
    metrics: Metrics,
) -> None:
    d = agreement_dir(
        {"test.yaml": base_agreement(review_date=str(START), expires=str(START + timedelta(days=400)))}
    )
    watcher, _, today = _watch(d, catalogue, keyring)
    event = make_event("police.crime_recorded")
    (plan,) = watcher.current().plans_for("police.crime_recorded")
    assert plan.apply(event).outcome == "shared"  # the review date itself still counts
    today.day = START + timedelta(days=1)
    assert watcher.refresh() is True  # nothing on disk changed: the calendar did
    (plan,) = watcher.current().plans_for("police.crime_recorded")
    assert plan.apply(event).outcome == "denied"
    assert metrics.values["lapsed"] == [0, 1]


def test_expiry_lapses_an_agreement_and_check_shows_it(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path], make_event: Any
) -> None:
    from streams.agreements import check_agreements

    d = agreement_dir({"test.yaml": base_agreement(expires=str(START - timedelta(days=10)))})
    agreements, issues = check_agreements(d, catalogue, today=START)
    assert agreements.agreements == () and [x.agreement.id for x in agreements.lapsed] == ["test-agreement"]
    assert [(i.severity, i.key, i.message) for i in issues] == [
        ("error", "expires", "expired on 2026-05-22: nothing is shared under it")
    ]
    watcher, _, _ = _watch(d, catalogue, keyring)
    (plan,) = watcher.current().plans_for("police.crime_recorded")
    assert plan.apply(make_event("police.crime_recorded")).reason.endswith(
        "expired on 2026-05-22: nothing is shared under it"
    )


def test_the_watcher_reloads_on_a_timer_without_traffic(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> None:
    d = agreement_dir({"test.yaml": base_agreement()})
    watcher = PlanWatcher(d, catalogue, keyring, interval=0.05)
    watcher.start()
    try:
        (d / "test.yaml").unlink()
        deadline = time.monotonic() + 10
        while len(watcher.current()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(watcher.current()) == 0  # revoked with no event and no call but current()
    finally:
        watcher.stop()


def test_a_missing_recipients_file_at_start_is_fatal(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> None:
    d = agreement_dir({"test.yaml": base_agreement()})
    (d / "recipients.yaml").unlink()
    with pytest.raises(ConfigurationError, match=r"recipients\.yaml: missing"):
        PlanWatcher(Settings(agreements_dir=d), catalogue, keyring)


def test_a_vanished_directory_stops_every_flow_until_it_returns(watched: Watched) -> None:
    watcher, d, _ = watched
    hidden = d.with_name(d.name + "-away")
    d.rename(hidden)
    assert watcher.refresh() is True and len(watcher.current()) == 0
    assert watcher.last_error is not None and "does not exist" in watcher.last_error
    assert watcher.refresh() is False  # said once
    hidden.rename(d)
    assert watcher.refresh() is True and len(watcher.current()) == 1 and watcher.last_error is None
