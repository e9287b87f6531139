"""Workers split by role, as production scales them: an enforcer-only worker beside one for the rest.

The enforcer-only worker runs Faust without a consumer (its batched consumer reads the raw topics),
is ready with only that consumer's partitions, and enforces every event; the other worker stores
the ledger, links and builds the views from what the first one produced. Neither does the other's
work (each role reads with its own consumer group).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.kafka.reader import read_to_end
from streams.publish.publisher import Publisher
from streams.publish.simulate import Simulation
from streams.settings import Settings
from tests.support.stack import reader_config
from tests.workers import WorkerProcess, discard, start_worker

EVENTS = 120


def _publish(settings: Settings, seed: int) -> set[str]:
    ids: set[str] = set()
    publishers: dict[str, Publisher] = {}
    try:
        for partner, event_type, event in Simulation(seed=seed, people=60).events(EVENTS):
            pub = publishers.get(partner) or publishers.setdefault(partner, Publisher(settings, partner))
            ids.add(str(pub.publish(event_type, event).event_id))
    finally:
        for pub in publishers.values():
            pub.close()
    return ids


def _wait(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def _counter(worker: WorkerProcess, name: str) -> float:
    text = httpx.get(f"{worker.url}/metrics", headers=worker.ops, timeout=5.0).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE))


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

        ids = _publish(settings, seed=41)

        def decided() -> set[str]:
            audit = read_to_end(reader_config(settings), topics.AUDIT_DECISIONS)
            return {json.loads(m.value())["event_id"] for m in audit} >= ids and ids

        _wait("every event decided", decided)
        assert _counter(enforcer, "sharingbus_events_consumed_total") == EVENTS
        assert _counter(rest, "sharingbus_events_consumed_total") == 0  # the rest never enforces

        def ledger() -> set[str]:
            with psycopg.connect(settings.postgres_dsn) as conn:
                try:
                    rows = conn.execute("SELECT DISTINCT event_id::text FROM audit_decisions").fetchall()
                except psycopg.errors.UndefinedTable:  # the sink creates it with its first batch
                    return set()
            return {r[0] for r in rows} >= ids and ids

        _wait("the ledger in PostgreSQL (audit role)", ledger)

        def views() -> dict[str, Any]:
            health = httpx.get(f"{rest.url}/api/health", headers=rest.analyst, timeout=5.0).json()
            return health if health.get("facts_applied", 0) > 0 else {}

        _wait("facts linked and applied to the views (linker and views roles)", views)
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
