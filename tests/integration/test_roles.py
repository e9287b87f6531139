"""Workers split by role, as production scales them: an enforcer-only worker beside one for the rest.

The enforcer-only worker runs Faust without a consumer (its batched consumer reads the raw topics),
is ready with only that consumer's partitions, and enforces every event; the other worker stores
the ledger, links and builds the views from what the first one produced. Neither does the other's
work (each role reads with its own consumer group).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.kafka.admin import partition_counts
from streams.publish.simulate import Simulation
from streams.settings import Settings
from tests.support.stack import metric_sum, publish, query, scrape, wait_decided, wait_until
from tests.workers import WorkerProcess, discard, start_worker

EVENTS = 120


def _counter(worker: WorkerProcess, name: str) -> float:
    return metric_sum(scrape(worker), name)


def test_an_enforcer_only_worker_and_a_worker_for_the_rest_share_the_pipeline(
    stack_factory: Callable[..., Settings], tmp_path: Any
) -> None:
    settings = stack_factory()
    enforcer = start_worker(
        settings.model_copy(update={"roles": "enforcer"}), tmp_path, name="enforcer", wait=False
    )
    no_keys = tmp_path / "no-keyring.json"  # the rest tokenises nothing, so it holds no key
    rest = start_worker(
        settings.model_copy(update={"roles": "audit,linker,views", "keyring_path": no_keys}),
        tmp_path,
        name="rest",
        wait=False,
    )
    try:
        enforcer.wait_ready()
        rest.wait_ready()
        ready = httpx.get(f"{enforcer.url}/ready", headers=enforcer.ops, timeout=10.0).json()
        raw_partitions = len(load_catalogue(settings.schemas_dir).raw_topics()) * settings.topic_partitions
        # Only the batched consumer's partitions: Faust runs without a consumer in this worker.
        assert ready["assigned_partitions"] == raw_partitions, ready
        assert ready["checks"]["enforcer_consuming"] is True
        assert "audit_consuming" not in ready["checks"] and "linker_consuming" not in ready["checks"]

        ids = {p.event_id for p in publish(settings, Simulation(seed=41, people=60).events(EVENTS))}
        wait_decided(settings, ids)
        assert _counter(enforcer, "sharingbus_events_consumed_total") == EVENTS
        assert _counter(rest, "sharingbus_events_consumed_total") == 0  # the rest never enforces

        wait_until(  # the sink creates the table with its first batch: `query` gives [] until then
            lambda: (
                ids
                <= {str(r[0]) for r in query(settings.postgres_dsn, "SELECT event_id FROM audit_decisions")}
            ),
            120,
            "the ledger in PostgreSQL (audit role)",
        )

        def views() -> dict[str, Any]:
            health = httpx.get(f"{rest.url}/api/health", headers=rest.analyst, timeout=5.0).json()
            return health if health.get("facts_applied", 0) > 0 else {}

        wait_until(views, 120, "facts linked and applied to the views (linker and views roles)")
        # The enforcer-only worker serves no views.
        assert (
            httpx.get(f"{enforcer.url}/api/health", headers=enforcer.analyst, timeout=5.0).status_code == 404
        )
        assert enforcer.proc.poll() is None and rest.proc.poll() is None
        assert not no_keys.exists()
        assert "Crashed reason" not in enforcer.log() + rest.log()
    finally:
        discard(enforcer, rest)


def test_roles_are_validated() -> None:
    assert Settings(roles="views, enforcer").roles == "enforcer,views"  # canonical order
    assert Settings(roles="all").role_set == {"enforcer", "audit", "linker", "views"}
    for bad in ("", "enforcer,gateway", " , "):
        with pytest.raises(ValueError, match="roles must be"):
            Settings(roles=bad)


def test_a_worker_is_ready_only_once_every_consumer_of_its_roles_holds_its_partitions(
    stack_factory: Callable[..., Settings], tmp_path: Any
) -> None:
    """Readiness is what a deployment (and a benchmark) waits for before sending traffic: a worker
    whose audit sink and linker hold their partitions while its enforcer has not joined its group
    yet (Tansu completes a first join half a session timeout after it) must not say ready."""
    settings = stack_factory()
    worker = start_worker(
        settings.model_copy(update={"roles": "enforcer,audit,linker"}), tmp_path, name="three", wait=False
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert worker.proc.poll() is None, worker.log()[-4000:]
            assert time.monotonic() < deadline, "never ready"
            try:
                reply = httpx.get(f"{worker.url}/ready", headers=worker.ops, timeout=10.0)
            except httpx.ConnectError:  # the web server is not listening yet
                reply = None
            if reply is not None and reply.status_code == 200:
                break
            time.sleep(0.05)
        counts = partition_counts(settings)
        held = sum(n for topic, n in counts.items() if topic.startswith("raw."))
        held += counts[topics.AUDIT_DECISIONS] + counts[topics.LINK_IDENTIFIERS]
        assert reply.json()["assigned_partitions"] == held, reply.json()
    finally:
        discard(worker)
