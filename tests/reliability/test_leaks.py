"""Nothing identifying leaves the bus: shared and view topics, the HTTP API and the worker's logs.

A simulated population publishes through the worker (with 5% bad check digits and the simulator's
location descriptions that name people). Everything partners sent that identifies someone (the
truth file's identifiers, names, dates of birth, postcodes and every published variant of them,
plus every free-text value and exact coordinate of the published events) becomes a `Secrets` set,
and `streams.privacy.leakscan` looks for it, by meaning rather than bytes (an NHS number with spaces, a date
of birth as "14 March 2008", a postcode without its space, a name in capitals all count), in:
- every `shared.*` and `views.*` topic (Avro decoded with the registry), keys and headers included;
- the bus-internal `audit.*` and `link.*` topics, which feed subject access and the views;
- every `/api/...` answer of the worker, at the most privileged tier (individual);
- the worker's log.
A canary (one person's identifiers, planted on a topic of its own) proves the scan finds what it
looks for, and coverage is asserted, so an empty scan cannot pass for a clean one.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from streams.kafka.admin import TopicSpec, ensure_topics
from streams.privacy.leakscan import Leak, LeakScanner, ScanReport, Secrets, scan_topics
from streams.publish.simulate import Simulation
from streams.registry.client import registry_client
from tests.reliability.conftest import Sizes
from tests.support.stack import (
    Stack,
    decoded,
    produce_all,
    publish,
    raw_producer,
    read_topic,
    reader_config,
    topic_names,
    wait_decided,
    wait_until,
)
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow


def crawl_api(worker: WorkerProcess, scanner: LeakScanner) -> tuple[ScanReport, dict[str, Any]]:
    """GET every API route (each person of the cohort, each week of the area table) and scan it."""
    report = ScanReport()
    bodies: dict[str, Any] = {}
    with httpx.Client(base_url=worker.url, headers=worker.analyst, timeout=15) as client:

        def get(path: str) -> Any:
            response = client.get(path)
            report.extend("api", scanner.scan_bytes(f"GET {path}", response.content))
            assert response.status_code == 200, (path, response.status_code, response.text[:200])
            bodies[path] = response.json()
            return bodies[path]

        for path in ("/api/factors", "/api/trends", "/api/health", "/api/cohort?n=100"):
            get(path)
        areas = get("/api/areas")
        weeks = areas.get("weeks") or []
        for week in weeks[:60]:
            if isinstance(week, str):
                get(f"/api/areas?week={week}")
        for entry in bodies["/api/cohort?n=100"].get("cohort", []):
            token = entry.get("person_token") if isinstance(entry, dict) else entry
            if isinstance(token, str):
                get(f"/api/persons/{token}")
    return report, bodies


def canary(stack: Stack, truth_row: dict[str, Any], description: str) -> str:
    """Plant one person's identifiers, reformatted, on a topic of its own; returns the topic."""
    dob = truth_row["date_of_birth"]
    year, month, day = dob.split("-")
    nhs = truth_row["nhs_number"]
    doc = {
        "note": f"{truth_row['family_name'].upper()}, {truth_row['given_name']}",
        "nhs": f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}",
        "born": f"{int(day)}/{int(month)}/{year}",
        "home": truth_row["postcode"].replace(" ", "").lower(),
        "where": description.upper(),
    }
    topic = f"views.zz_canary_{uuid.uuid4().hex[:6]}"
    ensure_topics(stack.settings, [TopicSpec(topic, 1)])
    produce_all(raw_producer(stack.settings), [(topic, b"canary", json.dumps(doc).encode())])
    return topic


def test_nothing_identifying_leaves_the_bus(stack: Stack, sizes: Sizes) -> None:
    settings = stack.settings
    worker = stack.start_worker(wait=False)  # it starts while the partners publish
    sim = Simulation(seed=404, people=sizes.people, invalid_rate=0.05)
    published = publish(settings, sim.events(sizes.leak_events))
    worker.wait_ready()
    wait_decided(settings, {p.event_id for p in published}, timeout=180)

    def views_emitted() -> bool:
        return bool(read_topic(settings, "views.person_profile")) and bool(
            read_topic(settings, "views.area_counts")
        )

    wait_until(views_emitted, 90, "the views agent to emit profiles and area counts", 0.5)

    truth = sim.truth()
    secrets = Secrets.from_truth(
        truth, [(p.event_type, p.record) for p in published], catalogue=stack.catalogue
    )
    naming = sorted(d for d in secrets.free_text if "near " in d)
    assert naming, "the simulation should publish free text naming people"
    assert len(secrets.name_pairs) >= len(truth) and len(secrets.dates_of_birth) > len(truth) // 4
    scanner = LeakScanner(secrets)

    person = next(r for r in truth if r["nhs_number"] and r["event_ids"])
    canary_topic = canary(stack, person, naming[0])

    registry = registry_client(settings)
    for topic in topic_names(settings, "shared."):
        decoded(settings, topic)  # every shared record decodes with the registry (raises if not)
    report = scan_topics(reader_config(settings), scanner, ("shared.", "views.", "audit.", "link."), registry)

    # The canary proves the scan works: each of its kinds is found, on its topic only.
    planted = [leak for leak in report.leaks if leak.where.startswith(canary_topic)]
    assert {leak.kind for leak in planted} >= {"nhs_number", "name", "date_of_birth", "postcode", "free_text"}

    # Coverage: the scan read real traffic on every kind of output.
    scanned = report.scanned
    shared_topics = [t for t in scanned if t.startswith("shared.")]
    assert shared_topics and sum(scanned[t] for t in shared_topics) >= len(published) // 10
    assert scanned["views.person_profile"] > 0 and scanned["views.area_counts"] > 0
    assert scanned["audit.decisions"] >= len(published) and scanned["link.identifiers"] > 0

    api, bodies = crawl_api(worker, scanner)
    persons = [p for p in bodies if p.startswith("/api/persons/")]
    assert persons, "the API served no person profile to scan"
    log = worker.log()
    assert len(log) > 1000
    logs = scanner.scan_text(f"worker log {worker.log_path.name}", log)

    leaks: list[Leak] = [leak for leak in report.leaks if not leak.where.startswith(canary_topic)]
    leaks += api.leaks + logs
    assert not leaks, "\n".join(str(leak) for leak in leaks[:30])
    print(
        f"\nleaks: {len(secrets)} secrets; scanned {sum(scanned.values())} topic records in {len(scanned)} "
        f"topics, {len(bodies)} API answers ({len(persons)} persons), {len(log)} bytes of log"
    )
