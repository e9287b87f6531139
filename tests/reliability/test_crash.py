"""kill -9 in the middle of a stream: nothing is lost, nothing is decided twice, the ledger holds.

A partner keeps publishing while the worker is killed (SIGKILL: no clean shutdown, no final
commit) and started again. The enforcer is at-least-once, so the restarted worker re-decides
whatever was in flight; the guarantees that must survive are:
- PostgreSQL holds exactly one decision per (event, recipient) for every published event: each
  recipient with a plan for the event's type and partner, plus the "*" default-deny record;
- every decision on the ledger topic for one (event, recipient) has the same outcome (a replay
  re-decides, it does not change its mind);
- every event an agreement shares reaches its shared topic at least once and nothing else does,
  and a duplicate on a shared topic is byte-identical (key and value) to the first copy;
- `sharebus audit verify --against-db` passes: every hash chain is intact across the crash, and
  every chain head stored in PostgreSQL is on the topic.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.publish.simulate import Simulation
from tests.reliability.conftest import Sizes
from tests.support.stack import (
    Feeder,
    Stack,
    crash_lines,
    expected_from_raw,
    metric_sum,
    open_stack,
    publish,
    scrape,
    shared_event_ids,
    stored_decisions,
    wait_decided,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def crash_stack(tmp_path: Path) -> Iterator[Stack]:
    with open_stack(tmp_path / "bus") as stack:
        yield stack


def test_kill_9_mid_stream_loses_nothing_and_keeps_the_ledger_intact(
    crash_stack: Stack, sizes: Sizes
) -> None:
    stack = crash_stack
    settings = stack.settings
    first = stack.start_worker("first", wait=False)  # it starts while the test prepares the stream
    sim = Simulation(seed=101, people=sizes.people)
    warmup = publish(settings, sim.events(100))
    events = list(sim.events(sizes.crash_events))
    first.wait_ready()
    wait_decided(settings, {p.event_id for p in warmup})  # the worker is consuming: start the clock
    feeder = Feeder(settings, events, rate=sizes.crash_rate)
    feeder.start()

    def consumed() -> float:
        return metric_sum(scrape(first), "sharingbus_events_consumed_total") - len(warmup)

    # Kill as soon as 40% is consumed: the enforcer counts an event while deciding it, before its
    # outputs are delivered and its offset committed, so this lands inside a batch more often than not.
    at_kill = wait_until(
        lambda: (n := consumed()) >= 0.4 * len(events) and n,
        120,
        "the worker to consume 40% of the stream",
        0.05,
    )
    first.kill()
    published_at_kill = len(feeder.published)
    assert first.proc.returncode == -9
    assert at_kill < len(events), "there must be work left when the worker dies"

    second = stack.start_worker("restarted", wait=False)
    published = feeder.finish() + warmup
    ids = {p.event_id for p in published}
    assert len(ids) == len(events) + len(warmup)
    expected = expected_from_raw(settings, stack.planset(), ids)  # from the raw topics, while it starts
    assert expected.event_ids == ids
    second.wait_ready()
    audit = wait_decided(settings, ids, timeout=180)

    # Exactly one decision per (event, recipient) in PostgreSQL, with the outcome the plans give.
    def stored() -> dict[tuple[str, str], str] | None:
        rows = {(e, r): o for e, r, o in stored_decisions(settings.postgres_dsn) if e in ids}
        return rows if rows.keys() >= expected.decisions.keys() else None

    rows = wait_until(stored, 120, "the audit sink to store every decision", 1.0)
    assert rows == expected.decisions

    # On the topic, replays may repeat a decision but never change it.
    outcomes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rec in audit:
        outcomes[(rec["event_id"], rec["recipient"])].add(rec["outcome"])
    assert outcomes.keys() == expected.decisions.keys()
    assert {k: v for k, v in outcomes.items() if len(v) != 1} == {}
    replayed = sum(Counter((r["event_id"], r["recipient"]) for r in audit).values()) - len(outcomes)

    # Every shared event reached its topic, nothing else did, and duplicates are identical copies.
    shared = shared_event_ids(settings)
    copies: dict[tuple[str, str], set[tuple[bytes, bytes]]] = defaultdict(set)
    for topic, records in shared.items():
        for event_id, key, value in records:
            copies[(topic, event_id)].add((key, value))
    got = {topic: {e for e, _, _ in records} for topic, records in shared.items() if records}
    assert got == expected.shared
    assert {k: len(v) for k, v in copies.items() if len(v) > 1} == {}

    verify = stack.sharebus("audit", "verify", "--against-db")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK" in verify.stdout

    assert second.proc.poll() is None
    assert crash_lines(second.log()) == []
    print(
        f"\ncrash: killed at {at_kill:.0f} consumed, {published_at_kill} of {len(events)} published; "
        f"{replayed} decisions replayed; "
        f"{sum(len(r) for r in shared.values()) - sum(len(v) for v in got.values())} shared duplicates"
    )
