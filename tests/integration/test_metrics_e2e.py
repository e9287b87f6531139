"""Every metric the bus declares is written by the code path it names, under real traffic.

Two workers share one Prometheus multiprocess directory, as production runs several per host: an
enforcer, and one for the audit sink, linker and views. The test publishes simulated events (some
with identifiers that fail their check digit) and one poison record per stage, breaks one agreement
file and lets another lapse, then reads the second worker's /metrics until every family in
`ALL_METRICS` shows what that traffic must have done (what the enforcer wrote included). A clean
stop of the enforcer must then remove its live gauges from the directory and from the survivor's
scrape (`mark_process_dead`), and keep its counters.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from pathlib import Path

from streams import metrics, topics
from streams.kafka.topology import DLQ_STAGES
from streams.publish.simulate import Simulation
from streams.settings import ROOT
from tests.support.stack import (
    metric_sum,
    open_stack,
    produce_all,
    publish,
    raw_producer,
    scrape,
    wait_decided,
    wait_until,
)
from tests.workers import start_worker

Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]


def _series(samples: Samples, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(labels), value) for (n, labels), value in samples.items() if n == name]


def _checks(
    partners: set[str], agreements: int, consumer_group: str, started: float
) -> dict[str, Callable[[Samples], bool]]:
    """Family name -> what the traffic of this test must have written to it."""

    def total(name: str, **labels: str) -> Callable[[Samples], float]:
        return lambda s: metric_sum(s, name, **labels)

    def gauge(name: str) -> Callable[[Samples], list[float]]:
        return lambda s: [v for _, v in _series(s, name)]

    return {
        "sharingbus_events_consumed": lambda s: (
            {labels["partner"] for labels, v in _series(s, "sharingbus_events_consumed_total") if v > 0}
            == partners
        ),
        "sharingbus_events_produced": lambda s: total("sharingbus_events_produced_total")(s) > 0,
        "sharingbus_decisions": lambda s: (
            total("sharingbus_decisions_total", outcome="shared")(s) > 0
            and total("sharingbus_decisions_total", outcome="denied")(s) > 0
        ),
        "sharingbus_dead_letters": lambda s: (
            total("sharingbus_dead_letters_total", stage="enforcer", reason="decode_error")(s) == 1
            and all(total("sharingbus_dead_letters_total", stage=stage)(s) == 1 for stage in DLQ_STAGES)
        ),
        "sharingbus_last_event_timestamp_seconds": lambda s: (
            {
                labels["partner"]
                for labels, v in _series(s, "sharingbus_last_event_timestamp_seconds")
                if v >= started
            }
            == partners
        ),
        "sharingbus_end_to_end_latency_seconds": lambda s: (
            total("sharingbus_end_to_end_latency_seconds_count")(s) > 0
        ),
        "sharingbus_processing_seconds": lambda s: all(
            total("sharingbus_processing_seconds_count", stage=stage)(s) > 0
            for stage in ("enforcer", "link", "view")
        ),
        "sharingbus_consumer_lag": lambda s: any(
            labels["topic"].startswith("raw.") for labels, _ in _series(s, "sharingbus_consumer_lag")
        ),
        "sharingbus_table_entries": lambda s: any(v > 0 for v in gauge("sharingbus_table_entries")(s)),
        "sharingbus_registry_requests": lambda s: (
            total("sharingbus_registry_requests_total", operation="get_schema", status="ok")(s) > 0
            and total("sharingbus_registry_requests_total", operation="register", status="ok")(s) > 0
        ),
        "sharingbus_invalid_identifiers": lambda s: total("sharingbus_invalid_identifiers_total")(s) > 0,
        "sharingbus_pseudonymisations": lambda s: total("sharingbus_pseudonymisations_total")(s) > 0,
        "sharingbus_agreements_loaded": lambda s: gauge("sharingbus_agreements_loaded")(s) == [agreements],
        "sharingbus_plan_reloads": lambda s: (
            total("sharingbus_plan_reloads_total", result="success")(s) >= 1
            and total("sharingbus_plan_reloads_total", result="failure")(s) >= 1
        ),
        "sharingbus_agreements_lapsed": lambda s: gauge("sharingbus_agreements_lapsed")(s) == [1],
        "sharingbus_agreements_invalid": lambda s: gauge("sharingbus_agreements_invalid")(s) == [1],
        "sharingbus_ready": lambda s: gauge("sharingbus_ready")(s) == [1],
        "sharingbus_worker_info": lambda s: (
            [labels["consumer_group"] for labels, v in _series(s, "sharingbus_worker_info") if v == 1]
            == [consumer_group]
        ),
    }


def _live_gauge_files(directory: Path, pid: int) -> list[str]:
    return sorted(p.name for p in directory.glob(f"gauge_live*_{pid}.db"))


def test_every_metric_moves_under_traffic_and_a_stopped_worker_leaves_no_live_gauge(
    tmp_path: Path,
) -> None:
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    n_agreements = len([p for p in agreements.glob("*.yaml") if p.name != "recipients.yaml"])
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {metrics.MULTIPROC_ENV: str(multiproc)}
    with open_stack(tmp_path / "bus", agreements_dir=agreements) as stack:
        started = time.time()
        # Two processes on one host, as production splits them: the enforcer, and the rest (which
        # holds no key). Either one's /metrics serves what both wrote.
        enforcer = start_worker(
            stack.settings.model_copy(update={"roles": "enforcer"}),
            tmp_path / "logs",
            name="enforcer",
            wait=False,
            env=env,
        )
        stack.workers.append(enforcer)
        rest = start_worker(
            stack.settings.model_copy(
                update={"roles": "audit,linker,views", "keyring_path": tmp_path / "no-keyring.json"}
            ),
            tmp_path / "logs",
            name="rest",
            wait=False,
            env=env,
        )
        stack.workers.append(rest)
        enforcer.wait_ready()
        rest.wait_ready()

        sim = Simulation(seed=31, people=200, invalid_rate=0.2)
        sent = publish(stack.settings, sim.events(300))
        partners = {p.partner for p in sent}
        # One poison record per stage: raw (enforcer), link (linker, views), ledger (audit sink).
        poison = b"not registry-framed Avro, nor JSON"
        raw = topics.raw("thames_valley_police", "police.stop_search")
        produce_all(raw_producer(stack.settings), [(raw, b"poison", poison)])
        wait_decided(stack.settings, {p.event_id for p in sent})
        internal = (topics.LINK_IDENTIFIERS, topics.LINK_PERSON, topics.AUDIT_DECISIONS)
        produce_all(raw_producer(stack.settings), [(topic, b"poison", poison) for topic in internal])

        # One agreement file broken, another past its review date: counted as each.
        (agreements / "draft-housing.yaml").write_text("id: housing-draft\ntitle: [unfinished\n")
        vru = agreements / "police-vru-analysts.yaml"
        passed = date.today() - timedelta(days=1)
        assert "review_date: 2027-09-30" in vru.read_text()
        vru.write_text(vru.read_text().replace("review_date: 2027-09-30", f"review_date: {passed}"))

        # The lapsed agreement is set aside (its flows denied), so one fewer is enforced.
        checks = _checks(partners, n_agreements - 1, stack.settings.consumer_group, started)
        assert checks.keys() == {m._name for m in metrics.ALL_METRICS}, "a metric without a check"

        unmoved: dict[str, list[tuple[str, dict[str, str], float]]] = {}

        def all_moved() -> bool:
            samples = scrape(rest)  # the enforcer's series too: the rest never enforces
            unmoved.clear()
            for name, moved in checks.items():
                if not moved(samples):
                    unmoved[name] = [(n, dict(k), v) for (n, k), v in samples.items() if n.startswith(name)]
            return not unmoved

        try:
            wait_until(all_moved, 60, "every metric to move")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; not moved: {unmoved}") from None

        # A clean stop marks the enforcer dead: its live gauges (lag is the enforcer's alone) leave
        # the directory and the survivor's scrape, its counters stay.
        consumed = metric_sum(scrape(rest), "sharingbus_events_consumed_total")
        assert consumed == len(sent)
        pid = enforcer.proc.pid
        assert _live_gauge_files(multiproc, pid), "the enforcer wrote no live gauge in multiprocess mode"
        assert enforcer.stop() == 0, enforcer.log()[-3000:]
        assert _live_gauge_files(multiproc, pid) == []
        assert (multiproc / f"counter_{pid}.db").exists()
        after = scrape(rest)
        assert _series(after, "sharingbus_consumer_lag") == []
        assert metric_sum(after, "sharingbus_events_consumed_total") == consumed
