"""PlanWatcher: a changed directory is recompiled; a broken change keeps the previous plans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from streams.agreements import PlanWatcher
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError
from streams.privacy.keys import KeyRing
from streams.settings import Settings

from .conftest import base_agreement


class Metrics:
    """Stands in for streams.metrics: records reloads instead of touching the global registry."""

    def __init__(self) -> None:
        self.reloads: list[str] = []
        self.loaded: list[int] = []
        self.AGREEMENTS_LOADED = self
        self.PLAN_RELOADS = self

    def set(self, n: int) -> None:
        self.loaded.append(n)

    def labels(self, result: str) -> Metrics:
        self.reloads.append(result)
        return self

    def inc(self) -> None:
        pass


@pytest.fixture(autouse=True)
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    fake = Metrics()
    monkeypatch.setattr("streams.agreements.watch.metrics", fake)
    return fake


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def watched(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> tuple[PlanWatcher, Path, Clock]:
    d = agreement_dir({"test.yaml": base_agreement()})
    clock = Clock()
    return PlanWatcher(d, catalogue, keyring, interval=2.0, clock=clock), d, clock


def test_unchanged_directory_serves_the_same_plan_set(watched: tuple[PlanWatcher, Path, Clock]) -> None:
    watcher, _, clock = watched
    first = watcher.current()
    clock.now += 10
    assert watcher.current() is first and watcher.last_error is None


def test_an_edit_is_picked_up_after_the_interval(watched: tuple[PlanWatcher, Path, Clock]) -> None:
    watcher, d, clock = watched
    first = watcher.current()
    (d / "test.yaml").write_text((d / "test.yaml").read_text().replace("version: '1'", "version: '2.0'"))
    clock.now += 1.0
    assert watcher.current() is first  # not looked at before the interval
    clock.now += 1.5
    second = watcher.current()
    assert second is not first and second.version != first.version
    assert [p.agreement_version for p in second] == ["2.0"]


def test_a_broken_edit_keeps_the_previous_plans(
    watched: tuple[PlanWatcher, Path, Clock], metrics: Metrics
) -> None:
    watcher, d, clock = watched
    first = watcher.current()
    (d / "test.yaml").write_text(
        (d / "test.yaml").read_text().replace("crime_category: keep", "crime_categry: keep")
    )
    clock.now += 3
    assert watcher.current() is first
    assert watcher.last_error is not None
    assert (
        "test.yaml: event_types.police.crime_recorded.fields.crime_categry: no such field"
        in watcher.last_error
    )
    (d / "test.yaml").write_text(
        (d / "test.yaml").read_text().replace("crime_categry: keep", "firearm: keep")
    )
    clock.now += 3
    fixed = watcher.current()
    assert fixed is not first and watcher.last_error is None
    assert metrics.reloads == ["failure", "success"] and metrics.loaded == [1, 1]
    assert "firearm" in fixed.plans[0].fields and fixed.plans[0].fields["firearm"].released


def test_a_new_file_is_picked_up(watched: tuple[PlanWatcher, Path, Clock]) -> None:
    watcher, d, clock = watched
    doc = base_agreement(
        id="stop-search", event_types={"police.stop_search": {"fields": {"outcome": "keep"}}}
    )
    (d / "stop-search.yaml").write_text(yaml.safe_dump(doc))
    clock.now += 3
    assert {p.event_type for p in watcher.current()} == {"police.crime_recorded", "police.stop_search"}


def test_a_broken_directory_at_start_is_fatal(
    catalogue: Catalogue, keyring: KeyRing, agreement_dir: Callable[..., Path]
) -> None:
    d = agreement_dir({"test.yaml": base_agreement(recipient="nobody")})
    with pytest.raises(ConfigurationError, match=r"test\.yaml: recipient: unknown recipient"):
        PlanWatcher(Settings(agreements_dir=d), catalogue, keyring)
