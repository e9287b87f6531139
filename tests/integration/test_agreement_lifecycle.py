"""Agreements over time, with a real worker, broker, registry and PostgreSQL (issue 17, findings 3 and 7).

- A shared record's envelope times are generalised like its other fields (month for an area-tier
  recipient), not the exact time that undoes the generalisation.
- While the worker runs, deleting an agreement beside a broken draft stops that flow at once (the
  watcher's timer sees it with no traffic: the metric says so before any event is published), and
  an agreement whose review date passes stops its own flow alone, audited with the reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from streams import topics
from streams.enforce.combine import is_combination
from streams.publish.simulate import Simulation
from streams.settings import ROOT, Settings
from tests.support.stack import decoded, metric_sum, publish, scrape, wait_decided, wait_until
from tests.workers import WorkerProcess, discard, start_worker

ASSAULT = datetime(2026, 11, 14, 23, 47, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack(
    module_stack_factory: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess]]:
    tmp_path = tmp_path_factory.mktemp("lifecycle")
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    settings = module_stack_factory(agreements_dir=agreements)
    worker = start_worker(settings, tmp_path / "logs")
    try:
        yield settings, worker
    finally:
        discard(worker)


def _events(
    seed: int, partner: str, event_type: str, keep: Callable[[dict[str, Any]], bool], n: int
) -> list[tuple[str, str, dict[str, Any]]]:
    found = [
        (p, t, e)
        for p, t, e in Simulation(seed=seed, people=150).events(3000)
        if p == partner and t == event_type
    ]
    chosen = [x for x in found if keep(x[2])][:n]
    assert len(chosen) == n, f"the simulation gave {len(chosen)} {event_type} from {partner}"
    return chosen


def _shared_ids(settings: Settings, topic: str) -> dict[str, dict[str, Any]]:
    return {str(r["envelope"]["event_id"]): r for _, r in decoded(settings, topic)}


def _gauge(worker: WorkerProcess, name: str) -> float:
    return metric_sum(scrape(worker), name)


def test_a_shared_record_carries_envelope_times_generalised_for_its_tier(
    stack: tuple[Settings, WorkerProcess],
) -> None:
    settings, _ = stack
    [(partner, event_type, event)] = _events(
        21, "royal_berkshire_ed", "health.ed_assault_attendance", bool, 1
    )
    event["envelope"]["occurred_at"] = ASSAULT
    event["assault_at"] = ASSAULT
    [sent] = publish(settings, [(partner, event_type, event)])
    wait_decided(settings, {sent.event_id})
    topic = topics.shared("reading_csp", "health.ed_assault_attendance")
    record = _shared_ids(settings, topic)[sent.event_id]
    assert record["assault_at"] == "2026-11"
    assert record["envelope"]["occurred_at"] == "2026-11"
    recorded = sent.record["envelope"]["recorded_at"].astimezone(ZoneInfo("Europe/London"))
    assert record["envelope"]["recorded_at"] == recorded.strftime("%Y-%m")
    assert set(record["envelope"]) == {
        "event_id",
        "event_type",
        "source_partner",
        "occurred_at",
        "recorded_at",
        "schema_version",
    }


def test_revocation_and_lapse_apply_while_running_each_to_its_own_flow(
    stack: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = stack
    exclusions = _events(
        22,
        "reading_schools",
        "education.exclusion",
        lambda e: e.get("exclusion_type") in ("PERMANENT", "SUSPENSION"),
        4,
    )
    yjs = topics.shared("reading_yjs_team", "education.exclusion")
    before = {p.event_id for p in publish(settings, exclusions[:2])}
    wait_decided(settings, before)
    assert before <= _shared_ids(settings, yjs).keys()

    # Revoke: delete the agreement while an unfinished draft sits beside it. The timer notices
    # with no event in flight (the draft is counted as invalid), before anything is published.
    agreements = settings.agreements_dir
    (agreements / "draft-housing.yaml").write_text("id: housing-draft\ntitle: [unfinished\n")
    (agreements / "education-yjs.yaml").unlink()
    wait_until(
        lambda: _gauge(worker, "sharingbus_agreements_invalid") == 1, 30, "the watcher to see the draft"
    )
    after = {p.event_id for p in publish(settings, exclusions[2:])}
    audit = wait_decided(settings, after)
    assert not after & _shared_ids(settings, yjs).keys(), "a deleted agreement still shares"
    for event_id in after:
        (record,) = [r for r in audit if r["event_id"] == event_id and not is_combination(r)]
        assert (record["recipient"], record["outcome"]) == ("*", "denied")
        assert "reading_yjs_team" in record["reason"]

    # Lapse: the VRU agreement's review date passes; only its flow stops, audited with the reason.
    vru = agreements / "police-vru-analysts.yaml"
    passed = date.today() - timedelta(days=1)
    vru.write_text(vru.read_text().replace("review_date: 2027-09-30", f"review_date: {passed}"))
    wait_until(lambda: _gauge(worker, "sharingbus_agreements_lapsed") == 1, 30, "the VRU agreement to lapse")
    crimes = _events(
        23, "thames_valley_police", "police.crime_recorded", lambda e: e["crime_category"] == "ROBBERY", 1
    )
    [ed] = _events(24, "royal_berkshire_ed", "health.ed_assault_attendance", bool, 1)
    sent = publish(settings, [*crimes, ed])
    audit = wait_decided(settings, {p.event_id for p in sent})
    by_recipient = {r["recipient"]: r for r in audit if r["event_id"] == sent[0].event_id}
    assert by_recipient["vru_analysts"]["outcome"] == "denied"
    assert by_recipient["vru_analysts"]["agreement_id"] == "police-to-vru-analysts"
    assert f"review date {passed} has passed" in by_recipient["vru_analysts"]["reason"]
    assert sent[0].event_id not in _shared_ids(
        settings, topics.shared("vru_analysts", "police.crime_recorded")
    )
    ed_decision = [r for r in audit if r["event_id"] == sent[1].event_id and r["recipient"] == "reading_csp"]
    assert [r["outcome"] for r in ed_decision] == ["shared"]  # every other agreement goes on
    assert worker.proc.poll() is None
