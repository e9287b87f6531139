"""A whole bus of its own per test: Tansu, registry, PostgreSQL database, key ring, worker processes.

The session fixtures in `tests/conftest.py` share one broker, so every worker started there sees
every test's raw topics. The reliability tests kill, cut and restart brokers and workers, so each
gets a stack of its own (a Tansu process starts in well under a second):

    with open_stack(tmp_path) as stack:
        worker = stack.start_worker()
        published = publish(stack.settings, Simulation(seed=1, people=300).events(500))
        wait_decided(stack.settings, {p.event_id for p in published})

Also used by `benchmarks/soak.py`, so nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from streams import topics
from streams.agreements import PlanSet, compile_plans, load_agreements
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.avro.serde import SchemaCache, SerdeError, decode
from streams.enforce.audit_recovery import READER_CONFIG
from streams.enforce.combine import is_combination
from streams.errors import BrokerError
from streams.kafka.admin import ensure_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.reader import read_to_end
from streams.kafka.topology import bus_topics
from streams.privacy.keys import KeyRing
from streams.publish.publisher import Publisher
from streams.registry import EmbeddedRegistry
from streams.registry.client import registry_client
from streams.settings import ROOT, Settings
from tests.workers import WorkerProcess, discard, start_worker

PG_ADMIN_DSN = os.environ.get("SHARINGBUS_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = ROOT
T = TypeVar("T")


# --------------------------------------------------------------------------- broker


class Tansu(EmbeddedBroker):
    """`EmbeddedBroker` with the reliability suite's log location; `advertised_port` lets a proxy
    stand between clients and the broker (Kafka clients reconnect to the advertised address)."""

    def __init__(
        self, port: int = 0, advertised_port: int | None = None, log_path: Path | None = None
    ) -> None:
        port = port or free_port()
        super().__init__(
            port=port,
            advertised_port=advertised_port,
            log_path=log_path or Path(tempfile.gettempdir()) / f"sharingbus-rel-tansu-{port}.log",
        )

    def stop(self, timeout: float = 10.0) -> None:
        """kill -9. Tansu keeps everything in memory, so a clean stop saves nothing, and it waits
        seconds for connected clients; to a worker either is a broker that vanished."""
        pid = self.pid
        if self.running and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().stop(timeout)


# --------------------------------------------------------------------------- PostgreSQL


def create_database(prefix: str = "sharingbus_rel") -> str:
    """A fresh database; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def query(dsn: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one statement (an empty list when the table does not exist yet)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            return []


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """One bus: broker (maybe behind a proxy), registry, database, key ring and its workers."""

    root: Path
    broker: Tansu
    registry: EmbeddedRegistry
    settings: Settings
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def catalogue(self) -> Catalogue:
        return load_catalogue(self.settings.schemas_dir)

    def planset(self) -> PlanSet:
        """The plans the worker enforces, compiled here with the same agreements and key ring."""
        catalogue = self.catalogue
        return compile_plans(
            load_agreements(self.settings.agreements_dir, catalogue),
            catalogue,
            KeyRing.load(self.settings.keyring_path),
        )

    def ensure_topics(self) -> None:
        ensure_topics(self.settings, bus_topics(self.settings, self.catalogue, self.planset()))

    def start_worker(
        self, name: str = "worker", *, wait: bool = True, env: Mapping[str, str] | None = None
    ) -> WorkerProcess:
        worker = start_worker(self.settings, self.root / "logs", wait=False, name=name, env=env)
        self.workers.append(worker)
        if wait:
            worker.wait_ready(120)
        return worker

    def sharebus(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return sharebus(self.settings, *args, timeout=timeout)


@contextlib.contextmanager
def open_stack(
    root: Path,
    *,
    broker: Tansu | None = None,
    agreements_dir: Path | None = None,
    registry_topic: str = topics.SCHEMAS,
    **overrides: Any,
) -> Iterator[Stack]:
    """A stack in `root`; on exit its workers, registry and broker (even one handed in) are stopped
    and its database dropped."""
    root.mkdir(parents=True, exist_ok=True)
    tansu = broker or Tansu(log_path=root / "tansu.log")
    if not tansu.running:
        tansu.start()
    dsn = create_database()
    registry: EmbeddedRegistry | None = None
    stack: Stack | None = None
    try:
        # As `sharebus registry` does, the registry keeps a copy of its records outside the broker.
        registry = EmbeddedRegistry(
            tansu.bootstrap, topic=registry_topic, copy_path=root / "registry" / f"{registry_topic}.jsonl"
        ).start()
        values: dict[str, Any] = {
            "bootstrap_servers": tansu.bootstrap,
            "schema_registry_url": registry.url,
            "postgres_dsn": dsn,
            "keyring_path": root / "keyring.json",
            "data_dir": root / "var",
            "consumer_group": f"sb-rel-{uuid.uuid4().hex[:8]}",
            "area_quiet_seconds": 3.0,  # closed weeks publish 3 s after their last change
            "agreements_dir": agreements_dir or REPO / "agreements",
        }
        values.update(overrides)
        settings = Settings(**values)
        KeyRing.load_or_create(settings.keyring_path)
        stack = Stack(root, tansu, registry, settings)
        stack.ensure_topics()
        yield stack
    finally:
        if stack is not None:
            discard(*stack.workers)
        if registry is not None:
            registry.stop()
        tansu.stop()  # a broker handed in too (a test may have restarted it: this is its last process)
        with contextlib.suppress(Exception):
            drop_database(dsn)


# --------------------------------------------------------------------------- publishing


@dataclass(frozen=True)
class Published:
    """One event a partner published: its id, where it went, and the record as prepared."""

    event_id: str
    partner: str
    event_type: str
    record: dict[str, Any]


class Publishers:
    """One `Publisher` per partner, created on first use; `close()` flushes them all."""

    def __init__(self, settings: Settings, catalogue: Catalogue | None = None) -> None:
        self.settings = settings
        self.catalogue = catalogue or load_catalogue(settings.schemas_dir)
        self._by_partner: dict[str, Publisher] = {}

    def publish(self, partner: str, event_type: str, event: Mapping[str, Any]) -> Published:
        pub = self._by_partner.get(partner)
        if pub is None:
            pub = self._by_partner[partner] = Publisher(self.settings, partner, self.catalogue)
        sent = pub.publish(event_type, dict(event))
        return Published(str(sent.event_id), partner, event_type, sent.record)

    def flush(self, timeout: float = 60.0) -> None:
        for pub in self._by_partner.values():
            pub.flush(timeout)

    def close(self, timeout: float = 60.0) -> None:
        pubs, self._by_partner = list(self._by_partner.values()), {}
        for pub in pubs:
            pub.close(timeout)


def publish(settings: Settings, events: Iterable[tuple[str, str, dict[str, Any]]]) -> list[Published]:
    """Publish simulated (partner, event_type, event) triples and wait for every acknowledgement."""
    pubs = Publishers(settings)
    try:
        return [pubs.publish(partner, event_type, event) for partner, event_type, event in events]
    finally:
        pubs.close()


class Feeder(threading.Thread):
    """Publishes events at `rate` per second in the background (a partner system that keeps going)."""

    def __init__(
        self, settings: Settings, events: Sequence[tuple[str, str, dict[str, Any]]], rate: float
    ) -> None:
        super().__init__(name="feeder", daemon=True)
        self.settings = settings
        self.events = events
        self.rate = rate
        self.published: list[Published] = []
        self.error: BaseException | None = None
        self.stop_event = threading.Event()

    def run(self) -> None:
        pubs = Publishers(self.settings)
        start = time.monotonic()
        try:
            for i, (partner, event_type, event) in enumerate(self.events):
                if self.stop_event.is_set():
                    break
                self.published.append(pubs.publish(partner, event_type, event))
                ahead = start + (i + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    self.stop_event.wait(ahead)
            pubs.close(120.0)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 180.0) -> list[Published]:
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError("feeder did not finish")
        if self.error is not None:
            raise self.error
        return self.published


def raw_producer(settings: Settings, **extra: Any) -> Producer:
    """A plain producer for hand-made (hostile) raw records."""
    conf: dict[str, Any] = {"acks": "all", "linger.ms": 5, "message.max.bytes": 4 * 1024 * 1024}
    conf.update(extra)
    return Producer(settings.kafka_config(**conf))


def produce_all(producer: Producer, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
    """Produce (topic, key, value) records and fail unless every one was acknowledged."""
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
    left = producer.flush(60)
    if left or errors:
        raise BrokerError(f"{left} records queued, {len(errors)} failed: {errors[:3]}")


# --------------------------------------------------------------------------- reading


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call `check` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
        last = check()
    assert last is not None
    return last


def reader_config(settings: Settings) -> dict[str, Any]:
    """librdkafka configuration for reading a topic to its end in a test.

    With librdkafka's default `fetch.wait.max.ms` (500) every read of a topic waits half a second
    at its end for records that will not come; tests read topics hundreds of times while they poll.
    """
    return {**settings.kafka_config(), **READER_CONFIG}


def read_topic(settings: Settings, topic: str, timeout: float = 120.0) -> list[Message]:
    """Every record of `topic` (to partition EOF; an empty list if it does not exist)."""
    return list(read_to_end(reader_config(settings), topic, timeout=timeout))


def topic_names(settings: Settings, prefix: str = "") -> list[str]:
    names = AdminClient(settings.kafka_config()).list_topics(timeout=10).topics
    return sorted(t for t in names if t.startswith(prefix))


def audit_records(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(m.value() or b"{}") for m in read_topic(settings, topics.AUDIT_DECISIONS)]


def wait_decided(settings: Settings, event_ids: set[str], timeout: float = 120.0) -> list[dict[str, Any]]:
    """The release decisions on the audit topic once every event in `event_ids` has one.

    Records of combination into views are left out: `test_combination_e2e` checks those.
    """

    def check() -> list[dict[str, Any]] | None:
        records = audit_records(settings)
        if not event_ids <= {r.get("event_id") for r in records}:
            return None
        return [r for r in records if not is_combination(r)]

    return wait_until(check, timeout, f"{len(event_ids)} events to be decided", interval=0.5)


def stored_decisions(dsn: str) -> list[tuple[str, str, str]]:
    """(event_id, recipient, outcome) release decisions of the PostgreSQL audit copy."""
    rows = query(dsn, "SELECT event_id, recipient, outcome FROM audit_decisions")
    return [(str(e), str(r), str(o)) for e, r, o in rows if not is_combination({"recipient": r})]


def header(msg: Message, name: str) -> str | None:
    """First value of header `name`, decoded."""
    headers: Any = msg.headers() or []
    for key, value in headers.items() if isinstance(headers, dict) else headers:
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


def decoded(settings: Settings, topic: str) -> list[tuple[Message, dict[str, Any]]]:
    """Records of a registry-framed Avro topic, decoded (SerdeError for one that is not)."""
    cache = SchemaCache(registry_client(settings))
    out = []
    for msg in read_topic(settings, topic):
        _, record = decode(msg.value() or b"", cache)
        out.append((msg, record))
    return out


@dataclass
class Expected:
    """What the plans say the worker must do with a set of raw events."""

    decisions: dict[tuple[str, str], str]  # (event_id, recipient or "*") -> outcome
    reasons: dict[tuple[str, str], str]  # the same keys -> the plan's reason
    shared: dict[str, set[str]]  # shared topic -> event ids it must carry
    event_ids: set[str]


def expected_from_raw(settings: Settings, planset: PlanSet, event_ids: set[str] | None = None) -> Expected:
    """Decode every raw topic and apply the compiled plans to it, as the enforcer does.

    Records that do not decode (hostile input) are ignored here; `event_ids` restricts the result.
    """
    cache = SchemaCache(registry_client(settings))
    decisions: dict[tuple[str, str], str] = {}
    reasons: dict[tuple[str, str], str] = {}
    shared: dict[str, set[str]] = defaultdict(set)
    seen: set[str] = set()
    for raw_topic in topic_names(settings, "raw."):
        partner, event_type = topics.parse_raw(raw_topic)
        for msg in read_topic(settings, raw_topic):
            try:
                _, event = decode(msg.value() or b"", cache)
            except SerdeError:
                continue
            envelope = event.get("envelope") or {}
            event_id = str(envelope.get("event_id"))
            if envelope.get("source_partner") != partner or envelope.get("event_type") != event_type:
                continue  # what the enforcer dead-letters (spoofed, another topic's event)
            if event_ids is not None and event_id not in event_ids:
                continue
            seen.add(event_id)
            covered = set()
            for plan in planset.plans_for(event_type, partner):
                covered.add(plan.recipient)
                decision = plan.apply(event)
                decisions[(event_id, plan.recipient)] = decision.outcome
                reasons[(event_id, plan.recipient)] = decision.reason
                if decision.outcome == "shared":
                    shared[plan.output_topic].add(event_id)
            if set(planset.recipients) - covered:
                decisions[(event_id, "*")] = "denied"
    return Expected(decisions, reasons, dict(shared), seen)


def shared_event_ids(settings: Settings) -> dict[str, list[tuple[str, bytes, bytes]]]:
    """Per shared topic: (event id header, key, value) of every record, duplicates included."""
    result: dict[str, list[tuple[str, bytes, bytes]]] = {}
    for topic in topic_names(settings, "shared."):
        result[topic] = [
            (header(m, "sharingbus.event_id") or "", m.key() or b"", m.value() or b"")
            for m in read_topic(settings, topic)
        ]
    return result


# --------------------------------------------------------------------------- workers and processes


def scrape(
    worker: WorkerProcess, timeout: float = 5.0
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The worker's /metrics as {(sample name, labels): value}."""
    text = httpx.get(f"{worker.url}/metrics", headers=worker.ops, timeout=timeout).text
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return samples


def metric_sum(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of every sample called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= lab)


def metric_max(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    values = [v for (n, _), v in samples.items() if n == name]
    return max(values) if values else float("nan")


def sharebus(settings: Settings, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """`sharebus ARGS` in a child process with these settings as SHARINGBUS_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env.update(settings.to_env())
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


# An agent that died (Faust acks a crashed agent's batch), a worker that died, an event the engine
# could not handle (dead-lettered as internal_error). A batch that failed on a broker error and is
# consumed again is not a crash: see `tracebacks`.
CRASH_MARKERS = (
    "Crashed reason",
    "Restarting dead",
    "We experienced a crash",
    "internal error processing",
)


def crash_lines(log: str) -> list[str]:
    """Log lines showing an agent or worker crash, or an event the engine failed on."""
    return [line for line in log.splitlines() if any(m in line for m in CRASH_MARKERS)]


def tracebacks(log: str) -> list[str]:
    """The exception line of every traceback in `log` (handled or not), for failure messages."""
    lines = log.splitlines()
    return [
        next((t for t in lines[i + 1 :] if t and not t[0].isspace()), line)
        for i, line in enumerate(lines)
        if "Traceback (most recent call last)" in line
    ]
