"""The metrics module: names, label sets, helpers and exposition (single- and multi-process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import metrics

FORBIDDEN_LABELS = {"token", "event_id", "id", "subject", "nhs_number", "upn", "pnc_id", "offset", "message"}


def _sample(name: str, **labels: str) -> float | None:
    body, _ = metrics.render_latest()
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_every_metric_is_named_sharingbus_and_has_low_cardinality_labels() -> None:
    names = [m._name for m in metrics.ALL_METRICS]
    assert len(names) == len(set(names))
    for metric in metrics.ALL_METRICS:
        assert metric._name.startswith("sharingbus_"), metric._name
        assert not set(metric._labelnames) & FORBIDDEN_LABELS, metric._name
        assert metric._documentation


def test_sample_names_include_type_suffixes() -> None:
    names = metrics.sample_names()
    assert names["sharingbus_decisions_total"] == "sharingbus_decisions"
    assert "sharingbus_end_to_end_latency_seconds_bucket" in names
    assert "sharingbus_consumer_lag" in names
    assert "sharingbus_decisions" not in names  # counters are only exposed with _total


def test_decisions_are_counted_and_rendered() -> None:
    before = _sample("sharingbus_decisions_total", agreement="a1", recipient="vru", outcome="shared") or 0
    metrics.DECISIONS.labels(agreement="a1", recipient="vru", outcome="shared").inc()
    after = _sample("sharingbus_decisions_total", agreement="a1", recipient="vru", outcome="shared")
    assert after == before + 1


def test_unknown_dead_letter_reason_is_folded_into_a_fixed_code() -> None:
    metrics.count_dead_letter("enforcer", "KeyError: 'nhs_number' 9434765919")
    metrics.count_dead_letter("enforcer", "decode_error")
    body, _ = metrics.render_latest()
    assert b"9434765919" not in body
    assert _sample("sharingbus_dead_letters_total", stage="enforcer", reason="internal_error")
    assert _sample("sharingbus_dead_letters_total", stage="enforcer", reason="decode_error")


def test_preinitialise_creates_zero_series() -> None:
    metrics.preinitialise(stages=["linker"])
    assert _sample("sharingbus_dead_letters_total", stage="linker", reason="spoofed_partner") == 0
    assert _sample("sharingbus_plan_reloads_total", result="failure") == 0


def test_registry_status_codes() -> None:
    assert [metrics.registry_status(s) for s in (200, 404, 409, 503, None)] == [
        "ok",
        "not_found",
        "client_error",
        "server_error",
        "unreachable",
    ]
    assert {metrics.registry_status(s) for s in (200, 404, 409, 503, None)} == metrics.REGISTRY_STATUSES


def test_consumer_lag_from_high_watermark_and_removed_on_revoke() -> None:
    metrics.set_consumer_lag("raw.tvp.police.crime_recorded", 3, highwater=120, position=100)
    assert _sample("sharingbus_consumer_lag", topic="raw.tvp.police.crime_recorded", partition="3") == 20
    metrics.set_consumer_lag("raw.tvp.police.crime_recorded", 4, highwater=None, position=5)
    assert _sample("sharingbus_consumer_lag", partition="4") is None
    metrics.remove_consumer_lag("raw.tvp.police.crime_recorded", 3)
    metrics.remove_consumer_lag("raw.tvp.police.crime_recorded", 3)  # idempotent
    assert _sample("sharingbus_consumer_lag", topic="raw.tvp.police.crime_recorded", partition="3") is None


def test_render_latest_negotiates_openmetrics() -> None:
    body, content_type = metrics.render_latest("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    _, plain = metrics.render_latest(None)
    assert plain.startswith("text/plain")


def test_worker_info_is_served() -> None:
    metrics.set_worker_info("sharingbus")
    assert _sample("sharingbus_worker_info", consumer_group="sharingbus") == 1
    body, _ = metrics.render_latest(None)
    assert b'sharingbus_worker_info{consumer_group="sharingbus"' in body


def test_multiprocess_mode_aggregates_worker_processes(tmp_path: Path) -> None:
    """Two worker processes write their own files; one scrape sees the sum of both."""
    worker = textwrap.dedent(
        """
        import os
        from streams import metrics
        metrics.DECISIONS.labels(agreement="a", recipient="r", outcome="denied").inc(3)
        metrics.TABLE_ENTRIES.labels(table="profiles").set(5)
        print(os.getpid())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = [
        subprocess.run(
            [sys.executable, "-c", worker], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        for _ in range(2)
    ]
    scrape = textwrap.dedent(
        """
        import sys
        from streams import metrics
        assert metrics.multiprocess_enabled()
        for pid in sys.argv[1:]:
            metrics.mark_process_dead(int(pid))
        body, content_type = metrics.render_latest()
        sys.stdout.write(body.decode())
        """
    )

    def scrape_samples(*dead: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        out = subprocess.run(
            [sys.executable, "-c", scrape, *dead], env=env, check=True, capture_output=True, text=True
        )
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(out.stdout)
            for s in family.samples
        }

    decisions = (
        "sharingbus_decisions_total",
        (("agreement", "a"), ("outcome", "denied"), ("recipient", "r")),
    )
    entries = ("sharingbus_table_entries", (("table", "profiles"),))
    samples = scrape_samples()
    assert samples[decisions] == 6
    assert samples[entries] == 10  # livesum over both worker processes
    samples = scrape_samples(*pids)
    assert samples[decisions] == 6  # counters survive their process
    assert entries not in samples  # live gauges of exited workers are dropped


@pytest.mark.parametrize("doc", ["docs/operations.md", "README.md"])
def test_metric_tables_list_exactly_the_exposed_metrics(doc: str) -> None:
    """Every exposed metric is in the doc's table, and the table names no metric the bus lacks."""
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    exposed = {
        name.removesuffix("_bucket")
        for name in metrics.sample_names()
        if not name.endswith(("_count", "_sum"))
    }
    listed = set(re.findall(r"^\| `(sharingbus_[a-z_]+)`", text, re.MULTILINE))
    assert listed == exposed, (
        f"{doc}: missing {sorted(exposed - listed)}, not exposed {sorted(listed - exposed)}"
    )
