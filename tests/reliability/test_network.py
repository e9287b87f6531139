"""A network cut between the worker and the broker: nothing is lost and the worker heals itself.

Kafka clients reconnect to the broker's *advertised* address, so the test runs a Tansu of its own
that advertises a loopback TCP proxy (`tests.support.proxy.TcpProxy`); every client (worker,
registry, partners, the test's readers) goes through it. In the middle of a stream the proxy
resets every connection of the worker process and refuses its reconnections for 10 s, while the
partners keep publishing: a backlog builds up behind the cut. Then the link comes back.

Asserted: the worker was really cut off (its connections reset, its reconnection attempts refused);
while cut it consumed nothing and its /metrics showed it (`sharingbus_events_consumed_total` flat,
`sharingbus_last_event_timestamp_seconds` falling behind the clock by about the cut's length, what
the "partner silent" alert watches); afterwards it caught up by itself, with the same process (no
restart, no agent crash), every event was decided once per recipient in PostgreSQL, and the ledger
verifies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from streams.kafka.broker import free_port
from streams.publish.simulate import Simulation
from tests.reliability.conftest import Sizes
from tests.support.proxy import TcpProxy, owned_by
from tests.support.stack import (
    Feeder,
    Stack,
    Tansu,
    crash_lines,
    expected_from_raw,
    metric_max,
    metric_sum,
    open_stack,
    scrape,
    stored_decisions,
    wait_decided,
    wait_until,
)
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow


@dataclass
class Sample:
    at: float  # wall clock
    consumed: float
    last_event: float  # unix time of the last consumed event
    ready: int  # /ready status code


class Sampler(threading.Thread):
    """Scrapes the worker's /metrics about twice a second (it does not go through the proxy).

    /ready is probed by a thread of its own (`ReadyProbe`): while the broker is cut it answers only
    after seconds, which would space the metric samples out as well.
    """

    def __init__(self, worker: WorkerProcess) -> None:
        super().__init__(name="sampler", daemon=True)
        self.worker = worker
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()
        self.ready = ReadyProbe(worker, self.stop_event)

    def run(self) -> None:
        self.ready.start()
        while not self.stop_event.is_set():
            try:
                metrics = scrape(self.worker)
            except httpx.HTTPError:
                metrics = {}
            if metrics:
                self.samples.append(
                    Sample(
                        time.time(),
                        metric_sum(metrics, "sharingbus_events_consumed_total"),
                        metric_max(metrics, "sharingbus_last_event_timestamp_seconds"),
                        self.ready.last,
                    )
                )
            self.stop_event.wait(0.5)
        self.ready.join(10)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]


class ReadyProbe(threading.Thread):
    """The worker's latest /ready status code (0: no answer within a second)."""

    def __init__(self, worker: WorkerProcess, stop_event: threading.Event) -> None:
        super().__init__(name="ready-probe", daemon=True)
        self.worker = worker
        self.stop_event = stop_event
        self.last = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:  # /ready probes the broker, which takes seconds while it is cut
                self.last = httpx.get(
                    f"{self.worker.url}/ready", headers=self.worker.ops, timeout=1.0
                ).status_code
            except httpx.HTTPError:
                self.last = 0
            self.stop_event.wait(0.5)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Stack, TcpProxy]]:
    port = free_port()
    tansu = Tansu(advertised_port=port, log_path=tmp_path / "tansu.log")
    with TcpProxy(("127.0.0.1", tansu.port), port=port) as proxy:
        tansu.start()
        try:
            with open_stack(tmp_path / "bus", broker=tansu) as stack:
                yield stack, proxy
        finally:
            tansu.stop()


def test_worker_survives_a_network_cut_and_catches_up(proxied: tuple[Stack, TcpProxy], sizes: Sizes) -> None:
    stack, proxy = proxied
    settings = stack.settings
    worker = stack.start_worker(wait=False)
    events = list(Simulation(seed=202, people=sizes.people).events(sizes.network_events))
    worker.wait_ready()
    pid = worker.proc.pid
    sampler = Sampler(worker)
    sampler.start()
    feeder = Feeder(settings, events, rate=sizes.network_rate)
    feeder.start()

    wait_until(lambda: len(feeder.published) >= len(events) // 4, 60, "a quarter of the stream", 0.1)
    wait_until(lambda: sampler.samples and sampler.samples[-1].consumed > 0, 30, "the worker to consume", 0.1)
    cut_at = time.time()
    reset = proxy.cut(only=owned_by([pid], proxy.port))
    published_at_cut = len(feeder.published)
    time.sleep(sizes.network_cut_s)
    published_during_cut = len(feeder.published) - published_at_cut
    restored_at = time.time()
    proxy.restore()

    published = feeder.finish()
    ids = {p.event_id for p in published}
    wait_decided(settings, ids, timeout=180)
    wait_until(worker.ready, 60, "/ready to answer 200 again", 0.5)
    caught_up = time.time()
    wait_until(  # a last sample after recovery (the metric must count every event: asserted below)
        lambda: [s for s in sampler.between(caught_up, time.time()) if s.consumed >= len(events)],
        30,
        "a sample after recovery counting every event as consumed",
        0.1,
    )
    sampler.stop_event.set()
    sampler.join(10)

    # The cut was real: live connections reset, reconnections refused, a backlog built up behind it.
    assert reset >= 1
    assert proxy.stats.refused >= 1, "the worker never tried to reconnect during the cut"
    assert published_during_cut > 0.5 * sizes.network_rate * sizes.network_cut_s

    # /metrics showed the stall: the last event ageing with the clock and, once the worker had
    # decided what it fetched before the cut (one more batch at most, held back unsent), nothing
    # consumed for the rest of the cut.
    during = sampler.between(cut_at + 1.0, restored_at)
    assert len(during) >= sizes.network_cut_s / 2  # one every 2 s at least, even on a loaded machine
    stalled = sampler.between(cut_at + sizes.network_cut_s / 2, restored_at)
    assert len(stalled) >= 2
    assert max(s.consumed for s in stalled) == min(s.consumed for s in stalled)
    # Nothing can be consumed while the link is cut, so the gauge still holds its last sampled
    # value when the link comes back: how far behind the clock "partner silent" saw it then.
    assert len({s.last_event for s in stalled}) == 1
    stalled_for = restored_at - stalled[-1].last_event
    assert stalled_for >= sizes.network_cut_s - 2.0, stalled_for
    after = sampler.between(restored_at, time.time())
    assert after and after[-1].consumed >= len(events)
    assert max(s.last_event for s in after) > restored_at, "the metric never showed the catch-up"

    # The same process healed itself and lost nothing.
    assert worker.proc.poll() is None and worker.proc.pid == pid
    assert crash_lines(worker.log()) == []
    assert worker.log().count("[^Worker]: Starting...") == 1
    expected = expected_from_raw(settings, stack.planset(), ids)
    assert expected.event_ids == ids

    def stored() -> dict[tuple[str, str], str] | None:
        rows = {(e, r): o for e, r, o in stored_decisions(settings.postgres_dsn) if e in ids}
        return rows if rows.keys() >= expected.decisions.keys() else None

    assert wait_until(stored, 120, "every decision in PostgreSQL", 1.0) == expected.decisions
    verify = stack.sharebus("audit", "verify", "--against-db")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(
        f"\nnetwork: reset {reset} connections, refused {proxy.stats.refused} reconnections, "
        f"{published_during_cut} events published during the cut, stall seen {stalled_for:.1f}s, "
        f"/ready codes during cut {sorted({s.ready for s in during})}"
    )
