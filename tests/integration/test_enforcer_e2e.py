"""The enforcer end to end: real worker process, broker, registry and PostgreSQL.

Each recipient's consumer must see exactly what its agreement allows (the same plans compiled
here give the expected output for every raw event), nothing identifying leaks, denials and dead
letters are audited, and an edited agreement takes effect without a restart.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from fastavro import schemaless_writer

from streams import topics
from streams.agreements import compile_plans, load_agreements
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache, decode
from streams.enforce.combine import is_combination
from streams.kafka.reader import read_to_end
from streams.privacy.keys import KeyRing
from streams.publish.publisher import Publisher
from streams.publish.simulate import Simulation
from streams.registry.client import RegistrySchemas, registry_client
from streams.settings import ROOT, Settings
from tests.support.stack import reader_config
from tests.workers import WorkerProcess, discard, start_worker

EVENTS = 400


def _publish(settings: Settings, events: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    ids: list[str] = []
    publishers: dict[str, Publisher] = {}
    try:
        for partner, event_type, event in events:
            pub = publishers.get(partner) or publishers.setdefault(partner, Publisher(settings, partner))
            ids.append(str(pub.publish(event_type, event).event_id))
    finally:
        for pub in publishers.values():
            pub.close()
    return ids


def _audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_to_end(reader_config(settings), topics.AUDIT_DECISIONS)]


def _wait_decided(settings: Settings, event_ids: set[str], timeout: float = 120.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = _audit(settings)
        missing = event_ids - {r["event_id"] for r in records}
        if not missing:
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} events never decided")
        time.sleep(0.3)


def _topics(settings: Settings, prefix: str) -> list[str]:
    names = AdminClient(settings.kafka_config()).list_topics(timeout=10).topics
    return sorted(t for t in names if t.startswith(prefix))


def _decoded(settings: Settings, topic: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
    cache = SchemaCache(registry_client(settings))
    for msg in read_to_end(reader_config(settings), topic):
        yield msg.value(), decode(msg.value(), cache)[1]


@pytest.fixture(scope="module")
def stack(
    module_stack_factory: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess]]:
    """One bus and one worker for the module. Tests publish their own events (own seeds) and
    check them by event id; the agreement-editing test runs last (file order)."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    settings = module_stack_factory(agreements_dir=agreements)
    worker = start_worker(settings, tmp_path / "logs")
    try:
        yield settings, worker
    finally:
        discard(worker)


def test_each_recipient_receives_exactly_what_its_agreement_allows(
    stack: tuple[Settings, WorkerProcess],
) -> None:
    settings, _ = stack
    sim = Simulation(seed=11, people=300)
    events = list(sim.events(EVENTS))
    ids = set(_publish(settings, events))
    audit = _wait_decided(settings, ids)

    # The same plans, compiled here, say what each recipient must receive for each raw event.
    catalogue = load_catalogue(settings.schemas_dir)
    planset = compile_plans(
        load_agreements(settings.agreements_dir, catalogue), catalogue, KeyRing.load(settings.keyring_path)
    )
    expected: dict[str, dict[str, Any]] = defaultdict(dict)  # shared topic -> event id -> output
    for raw_topic in _topics(settings, "raw."):
        partner, event_type = topics.parse_raw(raw_topic)
        for _, event in _decoded(settings, raw_topic):
            if str(event["envelope"]["event_id"]) not in ids:
                continue
            for plan in planset.plans_for(event_type, partner):
                decision = plan.apply(event)
                if decision.outcome == "shared":
                    expected[plan.output_topic][str(event["envelope"]["event_id"])] = decision.output
    assert expected, "the simulated traffic should share something"

    received: dict[str, dict[str, Any]] = defaultdict(dict)
    for topic in _topics(settings, "shared."):
        for _, record in _decoded(settings, topic):
            if str(record["envelope"]["event_id"]) in ids:
                received[topic][str(record["envelope"]["event_id"])] = record
    assert set(received) == set(expected)
    for topic, outputs in expected.items():
        assert received[topic].keys() == outputs.keys(), topic
        for event_id, output in outputs.items():
            got = dict(received[topic][event_id])
            got["envelope"] = dict(got["envelope"], event_id=str(got["envelope"]["event_id"]))
            want = dict(output)
            want["envelope"] = dict(want["envelope"], event_id=str(want["envelope"]["event_id"]))
            assert got == want, (topic, event_id)

    # One decision per (event, recipient with a plan), plus one default-deny record per event;
    # records of combination into views are checked in test_combination_e2e.
    audit = [r for r in audit if r["event_id"] in ids and not is_combination(r)]
    per_event = Counter(r["event_id"] for r in audit if r["recipient"] == "*")
    assert set(per_event) == ids and set(per_event.values()) == {1}
    shared = {(r["event_id"], r["output_topic"]) for r in audit if r["outcome"] == "shared"}
    assert shared == {(e, t) for t, outs in expected.items() for e in outs}


def test_nothing_identifying_reaches_any_shared_topic(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = stack
    sim = Simulation(seed=12, people=200)
    events = list(sim.events(300))
    ids = set(_publish(settings, events))
    _wait_decided(settings, ids)
    secrets: set[str] = set()
    for person in sim.truth():
        for field in ("nhs_number", "upn", "pnc_id", "given_name", "family_name", "postcode"):
            if person.get(field):
                secrets.add(str(person[field]))
        dob = person["date_of_birth"]
        secrets.update({dob, "/".join(reversed(dob.split("-")))})
        for variant in person.get("variants", []):
            if isinstance(variant.get("value"), str) and len(variant["value"]) > 3:
                secrets.add(variant["value"])
    for _, _, event in events:
        description = (event.get("location") or {}).get("description")
        if description:
            secrets.add(description)
    secrets = {s for s in secrets if len(s) >= 4}
    shared_topics = _topics(settings, "shared.")
    assert shared_topics
    for topic in shared_topics:
        for raw, record in _decoded(settings, topic):
            text = json.dumps(record, default=str)
            leaked = [s for s in secrets if s in text or s.encode() in raw]
            assert not leaked, (topic, leaked[:3])


def test_hostile_records_are_dead_lettered_with_their_reason(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = stack
    police_topic = topics.raw("thames_valley_police", "police.stop_search")
    school_topic = topics.raw("reading_schools", "education.exclusion")
    sim = Simulation(seed=13, people=100)
    stop_search = next(e for p, t, e in sim.events(500) if t == "police.stop_search")
    with Publisher(settings, "thames_valley_police") as pub:
        good = pub.prepare("police.stop_search", stop_search)
        good_id = str(pub.publish("police.stop_search", stop_search).event_id)
    schema_id = RegistrySchemas(registry_client(settings)).id_for(
        topics.value_subject(police_topic),
        load_catalogue(settings.schemas_dir).event_type("police.stop_search").schema,
    )
    spoofed = dict(good)
    spoofed["envelope"] = dict(
        good["envelope"], source_partner="reading_schools", event_id="5d0c6e7e-0000-4000-8000-000000000001"
    )
    buf = io.BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(
        buf, load_catalogue(settings.schemas_dir).event_type("police.stop_search").parsed, spoofed
    )
    spoofed_bytes = buf.getvalue()
    producer = Producer(settings.kafka_config())
    hostile = {
        b"garbage": (police_topic, os.urandom(64), "decode_error"),
        b"badmagic": (police_topic, b"\x07" + spoofed_bytes[1:], "decode_error"),
        b"unknownid": (police_topic, b"\x00\x00\x0f\x42\x3f" + spoofed_bytes[5:], "unknown_schema"),
        b"truncated": (police_topic, spoofed_bytes[:20], "decode_error"),
        b"spoofed": (police_topic, spoofed_bytes, "spoofed_partner"),
        b"othertopic": (school_topic, spoofed_bytes, "schema_mismatch"),
    }
    for key, (topic, value, _) in hostile.items():
        producer.produce(topic, key=key, value=value)
    producer.flush()
    deadline = time.monotonic() + 60
    reasons: dict[bytes, str] = {}
    while time.monotonic() < deadline and len(reasons) < len(hostile):
        for msg in read_to_end(reader_config(settings), topics.dlq("enforcer")):
            headers = dict(msg.headers() or [])
            reasons[msg.key()] = headers["sharingbus.dlq.reason"].decode()
            assert msg.value() == hostile[msg.key()][1]  # the original bytes, untouched
        if len(reasons) < len(hostile):
            time.sleep(0.3)
    assert reasons == {k: v[2] for k, v in hostile.items()}
    # Nothing hostile was shared, the good event was, and the worker never restarted.
    _wait_decided(settings, {good_id})
    assert worker.proc.poll() is None
    assert "Crashed reason" not in worker.log()


def test_event_ids_are_passed_on_in_canonical_form(stack: tuple[Settings, WorkerProcess]) -> None:
    """An upper-case spelling of a valid UUID is decided under its canonical (lower-case) form."""
    settings, _ = stack
    sim = Simulation(seed=17, people=100)
    stop_search = next(e for p, t, e in sim.events(500) if t == "police.stop_search")
    topic = topics.raw("thames_valley_police", "police.stop_search")
    et = load_catalogue(settings.schemas_dir).event_type("police.stop_search")
    with Publisher(settings, "thames_valley_police") as pub:
        record = pub.prepare("police.stop_search", stop_search)
    canonical = str(uuid.uuid4())
    record["envelope"] = dict(record["envelope"], event_id=canonical.upper())
    schema_id = RegistrySchemas(registry_client(settings)).id_for(topics.value_subject(topic), et.schema)
    buf = io.BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(buf, et.parsed, record)
    producer = Producer(settings.kafka_config())
    producer.produce(topic, key=b"upper", value=buf.getvalue())
    producer.flush()
    decisions = [r for r in _wait_decided(settings, {canonical}) if r["event_id"] == canonical]
    assert decisions and not [r for r in _audit(settings) if r["event_id"] == canonical.upper()]
    shared = {r["output_topic"] for r in decisions if r["outcome"] == "shared"}
    for out_topic in shared:
        events = [e for _, e in _decoded(settings, out_topic) if str(e["envelope"]["event_id"]) == canonical]
        assert events, out_topic


def test_audit_reaches_postgresql_and_the_chain_verifies(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = stack
    sim = Simulation(seed=15, people=100)
    events = list(sim.events(150))
    published = _publish(settings, events)
    ids = set(published)
    owner = {event_id: partner for event_id, (partner, _, _) in zip(published, events, strict=True)}
    _wait_decided(settings, ids)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")} | settings.to_env()
    verify = subprocess.run(
        [sys.executable, "-m", "sharebus.main", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    import psycopg

    deadline = time.monotonic() + 60
    stored: set[str] = set()
    while True:
        with psycopg.connect(settings.postgres_dsn) as conn:
            stored = {str(r[0]) for r in conn.execute("SELECT DISTINCT event_id FROM audit_decisions")}
        if ids <= stored or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert ids <= stored
    # The owners' own identifiers went to the re-identification vault (and nowhere else).
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute("SELECT DISTINCT event_id::text, partner FROM vault_identities").fetchall()
    rows = [(event_id, partner) for event_id, partner in rows if event_id in ids]
    assert rows
    assert all(owner[event_id] == partner for event_id, partner in rows)
    anonymous = {
        i for i, (_, t, _) in zip(published, events, strict=True) if t == "health.ed_assault_attendance"
    }
    assert not anonymous & {event_id for event_id, _ in rows}


def test_key_material_never_reaches_a_topic_or_a_log(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = stack
    sim = Simulation(seed=16, people=100)
    ids = set(_publish(settings, list(sim.events(200))))
    _wait_decided(settings, ids)
    ring = json.loads(settings.keyring_path.read_text())
    secrets = [entry["secret"] for entry in ring["keys"].values()]
    needles = [s.encode() for s in secrets] + [base64.b64decode(s) for s in secrets]
    assert needles and all(len(n) >= 16 for n in needles)
    scanned = 0
    for topic in _topics(settings, ""):
        for msg in read_to_end(reader_config(settings), topic):
            blob = (
                (msg.key() or b"") + (msg.value() or b"") + b"".join(v or b"" for _, v in msg.headers() or [])
            )
            assert not any(n in blob for n in needles), topic
            scanned += 1
    assert scanned > len(ids)
    log = worker.log().encode()
    assert log and not any(n in log for n in needles)


def test_consumer_lag_is_exported_per_input_partition(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = stack
    ids = set(_publish(settings, list(Simulation(seed=17, people=50).events(100))))
    _wait_decided(settings, ids)
    body = httpx.get(f"{worker.url}/metrics", headers=worker.ops, timeout=5).text
    lags = [line for line in body.splitlines() if line.startswith("sharingbus_consumer_lag{")]
    assert lags and all(line.split("topic=")[1].startswith('"raw.') for line in lags)
    assert all(float(line.rsplit(" ", 1)[1]) >= 0 for line in lags)


def test_an_edited_agreement_takes_effect_without_a_restart(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = stack
    sim = Simulation(seed=14, people=150)
    exclusions = [e for p, t, e in sim.events(2000) if t == "education.exclusion" and p == "reading_schools"]
    exclusions = [e for e in exclusions if e.get("exclusion_type") in ("PERMANENT", "SUSPENSION")][:10]
    assert len(exclusions) >= 4
    first, second = exclusions[:2], exclusions[2:]
    before = set(_publish(settings, [("reading_schools", "education.exclusion", e) for e in first]))
    _wait_decided(settings, before)
    decided_at = time.monotonic()  # the watcher last looked at the directory before this
    path = settings.agreements_dir / "education-yjs.yaml"
    text = path.read_text()
    assert "      reason: keep\n" in text
    path.write_text(text.replace("      reason: keep\n", "", 1).replace('version: "1.0"', 'version: "1.1"'))
    # The watcher looks again at the first batch at least 2 s after its last look (half a second spare).
    time.sleep(max(0.0, decided_at + 2.5 - time.monotonic()))
    after = set(_publish(settings, [("reading_schools", "education.exclusion", e) for e in second]))
    audit = _wait_decided(settings, after)
    topic = topics.shared("reading_yjs_team", "education.exclusion")
    by_id = {str(r["envelope"]["event_id"]): r for _, r in _decoded(settings, topic)}
    assert all("reason" in by_id[i] for i in before if i in by_id)
    assert [i for i in after if i in by_id], "the edited agreement still shares exclusions"
    assert all("reason" not in by_id[i] for i in after if i in by_id)
    versions = {
        r["agreement_version"]
        for r in audit
        if r["event_id"] in after and r["recipient"] == "reading_yjs_team"
    }
    assert versions == {"1.1"}
    assert worker.proc.poll() is None


def test_the_faust_agent_path_decides_every_event_too(
    stack_factory: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SHARINGBUS_BATCHED_CONSUMERS=false: the same engine behind Faust agents (take_events)."""
    settings = stack_factory(batched_consumers=False)
    worker = start_worker(settings, tmp_path_factory.mktemp("faust-mode"), wait=False)
    try:
        ids = set(_publish(settings, list(Simulation(seed=18, people=100).events(200))))
        worker.wait_ready()
        audit = _wait_decided(settings, ids)
        assert {r["event_id"] for r in audit if r["recipient"] == "*"} == ids
        assert any(r["outcome"] == "shared" for r in audit)
        assert "enforcer" in worker.log() and worker.proc.poll() is None
    finally:
        discard(worker)
