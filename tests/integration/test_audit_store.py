"""The PostgreSQL audit store and sink on a real database: round trip, de-duplication, queries, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from agents.audit_sink import AuditSink
from streams import topics
from streams.deadletter import RawRecord, header
from streams.enforce.audit import AuditChain, record_hash
from streams.enforce.audit_store import AuditStore, AuditStoreError, AuditStoreUnavailable
from streams.errors import ValidationError
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.broker import free_port
from streams.kafka.reader import read_to_end
from streams.settings import Settings


def uid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(pg_dsn: str) -> Any:
    with AuditStore(pg_dsn) as s:
        s.ensure_schema()
        s.ensure_schema()  # idempotent
        yield s


def decide(
    chain: AuditChain, event_id: str, recipient: str, outcome: str = "shared", **over: Any
) -> dict[str, Any]:
    shared = outcome == "shared"
    fields: dict[str, Any] = {
        "event_id": event_id,
        "source_partner": "reading_schools",
        "event_type": "education.exclusion",
        "recipient": recipient,
        "agreement_id": f"{recipient}-agreement" if shared else None,
        "agreement_version": "2" if shared else None,
        "outcome": outcome,
        "reason": over.pop("reason", "ok" if shared else "row condition failed"),
        "released": ["envelope.event_id", "exclusion_type"] if shared else [],
        "withheld": ["subject.upn"],
        "output_topic": f"shared.{recipient}.education.exclusion" if shared else None,
    }
    fields.update(over)
    return json.loads(chain.append(**fields)[1])


def test_round_trip_first_decision_wins_and_queries(store: AuditStore) -> None:
    chain = AuditChain(f"raw.reading_schools.education.exclusion/{uid()}")
    e1, e2, e3 = uid(), uid(), uid()
    token = f"k1.{uid()}"
    first = [
        decide(chain, e1, "vru_analysts", subject_tokens=[token], at="2026-03-01T10:00:00.000+00:00"),
        decide(
            chain,
            e1,
            "youth_offending",
            subject_tokens=[token, "k1.other"],
            at="2026-03-01T10:00:01.000+00:00",
        ),
        decide(chain, e1, "police", outcome="denied"),
        decide(chain, e2, "vru_analysts", subject_tokens=[token], at="2026-03-02T09:00:00.000+00:00"),
        # A duplicate inside the batch: the earlier record wins.
        decide(chain, e2, "vru_analysts", reason="re-decided in the same batch", subject_tokens=[token]),
    ]
    assert store.write_many(first) == 4
    # After a crash the enforcer re-decides e1 (new chain records, same (event, recipient)): dropped.
    redecided = [
        decide(chain, e1, "vru_analysts", reason="re-decided after a crash"),
        decide(chain, e3, "police", outcome="denied"),
    ]
    assert store.write_many(redecided) == 1
    assert store.write_many([]) == 0

    rows = store.by_event(e1)
    assert [(r["recipient"], r["outcome"]) for r in rows] == [
        ("police", "denied"),
        ("vru_analysts", "shared"),
        ("youth_offending", "shared"),
    ]
    assert rows[1] == first[0]  # exactly the chained record, so its hash still recomputes
    assert all(record_hash(r) == r["hash"] for r in rows)

    subject = store.by_subject(token)
    assert [(r["event_id"], r["recipient"], r["agreement_id"]) for r in subject] == [
        (e1, "vru_analysts", "vru_analysts-agreement"),
        (e1, "youth_offending", "youth_offending-agreement"),
        (e2, "vru_analysts", "vru_analysts-agreement"),
    ]
    assert subject[2]["reason"] == "ok"
    assert store.by_subject(f"k1.{uid()}") == []

    assert store.recipients_of([e1, e3, "unknown"]) == {
        e1: [
            ("vru_analysts", "shared.vru_analysts.education.exclusion", "vru_analysts-agreement"),
            ("youth_offending", "shared.youth_offending.education.exclusion", "youth_offending-agreement"),
        ],
        e3: [],  # denied: nothing was received
        "unknown": [],
    }
    heads = store.chain_heads()
    assert heads[chain.chain_id] == (redecided[1]["seq"], redecided[1]["hash"])


def test_invalid_record_fails_the_batch_before_writing(store: AuditStore) -> None:
    chain = AuditChain(f"raw.x.y.z/{uid()}")
    good = decide(chain, uid(), "vru_analysts")
    bad = decide(chain, uid(), "vru_analysts")
    bad["outcome"] = "leaked"
    with pytest.raises(ValidationError):
        store.write_many([good, bad])
    assert store.by_event(good["event_id"]) == []


def test_unreachable_database_is_reported_without_credentials() -> None:
    store = AuditStore("postgresql://auditor:s3cret@127.0.0.1:1/nowhere", connect_timeout=2)
    with pytest.raises(AuditStoreUnavailable) as info:
        store.by_event("x")
    assert "s3cret" not in str(info.value) and "127.0.0.1:1/nowhere" in str(info.value)


def test_sink_stores_batches_and_dead_letters_what_postgres_refuses(pg_dsn: str) -> None:
    chain = AuditChain(f"raw.x.y.z/{uid()}")
    e1, e2 = uid(), uid()
    values = [
        chain.append(**_fields(e1, "vru_analysts"))[1],
        b"{broken",
        chain.append(**_fields(e2, "vru_analysts", reason="bad\u0000byte"))[1],  # PostgreSQL refuses NUL
        chain.append(**_fields(e1, "vru_analysts", reason="duplicate"))[1],
        chain.append(**_fields(e2, "police"))[1],
    ]
    records = [
        RawRecord("audit.decisions", 1, 100 + i, chain.chain_id.encode(), v) for i, v in enumerate(values)
    ]
    with AuditStore(pg_dsn) as s:
        result = AuditSink(s).handle(records)
        assert (result.stored, result.duplicates) == (2, 1)
        assert [(header(d.headers, "sharingbus.dlq.reason"), d.value) for d in result.dead] == [
            ("decode_error", b"{broken"),
            ("validation", values[2]),
        ]
        assert "refused" in (header(result.dead[1].headers, "sharingbus.dlq.detail") or "")
        assert [r["reason"] for r in s.by_event(e1)] == ["ok"]
        assert [r["recipient"] for r in s.by_event(e2)] == ["police"]


def test_sink_waits_for_postgres_instead_of_dropping_a_batch() -> None:
    store = AuditStore("postgresql://127.0.0.1:1/nowhere", connect_timeout=1)
    sink = AuditSink(store, backoff=0.01)
    chain = AuditChain("raw.x.y.z/0")
    sink.stopping.set()  # a stopping worker gives up instead of retrying forever
    with pytest.raises(AuditStoreError):
        sink.handle([RawRecord("audit.decisions", 0, 0, None, chain.append(**_fields(uid(), "r"))[1])])


def _fields(event_id: str, recipient: str, reason: str = "ok") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source_partner": "p",
        "event_type": "a.b",
        "recipient": recipient,
        "outcome": "shared",
        "reason": reason,
        "subject_tokens": ["k1.s"],
    }


def test_cli_event_and_subject_answer_from_postgres(store: AuditStore, pg_dsn: str) -> None:
    chain = AuditChain(f"raw.reading_schools.education.exclusion/{uid()}")
    event_id, token = uid(), f"k1.{uid().replace('-', '')}"
    store.write_many(
        [
            decide(chain, event_id, "vru_analysts", subject_tokens=[token]),
            decide(chain, event_id, "police", outcome="denied"),
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env["SHARINGBUS_POSTGRES_DSN"] = pg_dsn

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sharebus.main", "audit", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    table = cli("event", event_id)
    assert table.returncode == 0, table.stderr
    assert "vru_analysts-agreement v2" in table.stdout and "denied" in table.stdout
    assert "shared.vru_analysts.education.exclusion" in table.stdout
    as_json = cli("subject", token, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [(r["event_id"], r["recipient"]) for r in json.loads(as_json.stdout)] == [
        (event_id, "vru_analysts")
    ]
    down = subprocess.run(
        [sys.executable, "-m", "sharebus.main", "audit", "event", event_id],
        env={**env, "SHARINGBUS_POSTGRES_DSN": "postgresql://127.0.0.1:1/nowhere"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 1 and down.stderr.startswith("error: cannot connect to PostgreSQL")
    assert len(down.stderr.strip().splitlines()) == 1


SINK_WORKER = """
import sys
from faust.worker import Worker
from agents import audit_sink
from agents.app import create_app
from streams.settings import Settings

settings = Settings()
settings.data_dir.mkdir(parents=True, exist_ok=True)
app = create_app(settings, consume=False)  # the sink reads with its own batched consumer
audit_sink.register(app, settings, source_topic=sys.argv[1])
Worker(app, loglevel="WARNING", redirect_stdouts=False).execute_from_commandline()
"""


def test_sink_in_a_real_faust_worker(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    settings = settings_factory(web_port=free_port())
    topic = topic_factory("audit", partitions=2)
    ensure_topics(settings, [TopicSpec(topics.dlq("audit_sink"))])
    chain = AuditChain(f"raw.x.y.z/{uid()}")
    events = [uid() for _ in range(30)]
    garbage = f"not json {uid()}".encode()
    producer = Producer(settings.kafka_config(**{"linger.ms": 20}))
    for event_id in events:
        producer.produce(topic, key=chain.chain_id.encode(), value=chain.append(**_fields(event_id, "r"))[1])
    producer.produce(topic, key=b"x", value=garbage)
    assert producer.flush(10) == 0

    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env.update(settings.to_env())
    log = tmp_path / "sink.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SINK_WORKER, topic], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 40
        with AuditStore(settings.postgres_dsn) as store:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if all(store.by_event(e) for e in (events[0], events[-1])):
                        break
                except AuditStoreError:  # table not created yet
                    pass
                time.sleep(0.3)
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert [len(store.by_event(e)) for e in events] == [1] * 30, log.read_text(errors="replace")[
                -3000:
            ]
        dead = [m for m in read_to_end(settings.kafka_config(), topics.dlq("audit_sink"), idle=0.5)]
        assert [
            header(list(m.headers() or []), "sharingbus.dlq.reason") for m in dead if m.value() == garbage
        ] == ["decode_error"]
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
