"""Helpers shared by the benchmarks: an isolated stack, pre-encoded events, counting, child processes.

Nothing here is measured: it sets up what the benchmarks measure and counts what they produce.
Counting reads records until an expected number has arrived, never "until the end offset" (Tansu
reports wrong end offsets: FAUST-NOTES.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Producer, TopicPartition

from streams.identity import LocalIssuer
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.settings import ROOT, Settings

PG_ADMIN_DSN = os.environ.get(
    "SHARINGBUS_BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def log(message: str) -> None:
    """Progress on stderr (stdout carries the results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the stack


class Stack:
    """A work directory, a PostgreSQL database and a key ring for one run; `bus()` starts a fresh
    Tansu broker and registry, so no measurement runs on a broker that earlier ones filled."""

    def __init__(self, workdir: Path | None = None, partitions: int = 4) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="sharingbus-bench-"))
        self.partitions = partitions
        self.database: str | None = None
        self.dsn = ""
        self.keyring_path = self.workdir / "keyring.json"

    def __enter__(self) -> Stack:
        from streams.privacy.keys import KeyRing

        self.database = f"sharingbus_bench_{uuid.uuid4().hex[:10]}"
        self.dsn = self._create_database(self.database)
        KeyRing.load_or_create(self.keyring_path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.database is not None:
            try:
                with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except psycopg.OperationalError:
                pass
            self.database = None

    @staticmethod
    def _create_database(name: str) -> str:
        try:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            log(f"PostgreSQL unavailable ({exc}); only the full worker needs it")
        return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"

    def bus(self, name: str) -> Bus:
        return Bus(self, name)


class Bus:
    """`with stack.bus("c") as bus: bus.settings`: its own broker and registry, stopped on exit."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.stack = stack
        self.name = name
        self.broker: EmbeddedBroker | None = None
        self.registry: Any = None
        self.settings: Settings | None = None

    def __enter__(self) -> Bus:
        from streams.registry import EmbeddedRegistry

        try:
            self.broker = EmbeddedBroker(log_path=self.stack.workdir / f"broker-{self.name}.log").start()
            self.registry = EmbeddedRegistry(self.broker.bootstrap).start()
        except BaseException:
            self.__exit__()
            raise
        self.settings = Settings(
            bootstrap_servers=self.broker.bootstrap,
            schema_registry_url=self.registry.url,
            postgres_dsn=self.stack.dsn,
            keyring_path=self.stack.keyring_path,
            data_dir=self.stack.workdir / "var" / self.name,
            topic_partitions=self.stack.partitions,
            log_level="WARNING",
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    @property
    def broker_pid(self) -> int | None:
        proc = getattr(self.broker, "_proc", None)
        return proc.pid if proc is not None else None


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Encoded:
    """One pre-encoded raw event, as a partner's Publisher would have framed it."""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    event_type: str
    partner: str


@dataclass
class Workload:
    events: list[Encoded]
    audits: int = 0  # audit.decisions records the enforcer must write for these events
    shared: int = 0  # upper bound: plans that may share (row conditions decide)
    by_type: dict[str, int] = field(default_factory=dict)


def encode_events(settings: Settings, n: int, seed: int = 1, people: int = 3000) -> list[Encoded]:
    """`n` simulated events, completed and framed exactly as `streams.publish.publisher.Publisher` does
    (`prepare_event`, then confluent-kafka's AvroSerializer registering `<topic>-value`)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from streams import topics
    from streams.avro.catalogue import load_catalogue
    from streams.publish.publisher import prepare_event
    from streams.publish.simulate import Simulation

    catalogue = load_catalogue(settings.schemas_dir)
    registry = SchemaRegistryClient(settings.registry_config())
    serializers: dict[str, AvroSerializer] = {}
    out: list[Encoded] = []
    for partner, event_type, event in Simulation(seed, people).events(n):
        record = prepare_event(catalogue, partner, event_type, event)
        topic = topics.raw(partner, event_type)
        ser = serializers.get(event_type)
        if ser is None:
            schema = json.dumps(catalogue.event_type(event_type).schema)
            ser = serializers[event_type] = AvroSerializer(
                registry, schema, conf={"auto.register.schemas": True}
            )
        value = ser(record, SerializationContext(topic, MessageField.VALUE))
        assert isinstance(value, bytes)
        event_id = record["envelope"]["event_id"]
        out.append(Encoded(topic, event_id.encode(), value, event_id, event_type, partner))
    return out


def workload(settings: Settings, events: list[Encoded]) -> Workload:
    """Expected output counts from the compiled plans (one audit per plan, one default deny)."""
    from streams.agreements import PlanWatcher
    from streams.avro.catalogue import load_catalogue
    from streams.privacy.keys import KeyRing

    catalogue = load_catalogue(settings.schemas_dir)
    planset = PlanWatcher(settings.agreements_dir, catalogue, KeyRing.load(settings.keyring_path)).current()
    w = Workload(events)
    cache: dict[tuple[str, str], tuple[int, int]] = {}
    for e in events:
        key = (e.event_type, e.partner)
        counts = cache.get(key)
        if counts is None:
            plans = planset.plans_for(e.event_type, e.partner)
            covered = {p.recipient for p in plans}
            uncovered = any(r not in covered for r in planset.recipients)
            counts = cache[key] = (len(plans) + (1 if uncovered else 0), len(plans))
        w.audits += counts[0]
        w.shared += counts[1]
        w.by_type[e.event_type] = w.by_type.get(e.event_type, 0) + 1
    return w


def register_raw_schemas(settings: Settings, topic_types: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Register each raw topic's catalogue schema as the Publisher's AvroSerializer does; ids by topic."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    from streams.avro.catalogue import load_catalogue

    catalogue = load_catalogue(settings.schemas_dir)
    registry = SchemaRegistryClient(settings.registry_config())
    ids: dict[str, int] = {}
    for topic, event_type in sorted(set(topic_types)):
        schema = Schema(json.dumps(catalogue.event_type(event_type).schema), "AVRO")
        ids[topic] = registry.register_schema(f"{topic}-value", schema)
    return ids


def reframe(settings: Settings, events: Sequence[Encoded]) -> list[Encoded]:
    """The same events framed with this registry's schema ids (a fresh registry may number differently)."""
    ids = register_raw_schemas(settings, ((e.topic, e.event_type) for e in events))
    out = []
    for e in events:
        header = b"\x00" + ids[e.topic].to_bytes(4, "big")
        out.append(
            e
            if e.value[:5] == header
            else Encoded(e.topic, e.key, header + e.value[5:], e.event_id, e.event_type, e.partner)
        )
    return out


def produce_all(settings: Settings, events: Iterable[Encoded]) -> int:
    """Write pre-encoded events to their raw topics as fast as the broker takes them."""
    producer = Producer(
        settings.kafka_config(
            **{"linger.ms": 20, "batch.num.messages": 10000, "acks": "all", "enable.idempotence": True}
        )
    )
    failed: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    n = 0
    for e in events:
        while True:
            try:
                producer.produce(e.topic, key=e.key, value=e.value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    producer.flush(60)
    if failed:
        raise RuntimeError(f"{len(failed)} raw events not delivered: {failed[0]}")
    return n


def create_topics(settings: Settings, specs: Sequence[TopicSpec]) -> None:
    ensure_topics(settings, list(specs))


# --------------------------------------------------------------------------- counting


@dataclass
class Count:
    records: int
    done_at: float  # time.time() when the expected count was reached
    first_ts: float  # broker/producer timestamps of the records counted (seconds)
    last_ts: float


def _partitions(consumer: Consumer, topic_names: Sequence[str]) -> list[TopicPartition]:
    md = consumer.list_topics(timeout=10)
    tps = []
    for name in topic_names:
        meta = md.topics.get(name)
        if meta is None or meta.error is not None:
            raise RuntimeError(f"topic {name} does not exist")
        tps += [TopicPartition(name, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
    return tps


class Counter:
    """Counts records on some topics from offset 0 in a thread, until `expected` have arrived."""

    def __init__(self, settings: Settings, topic_names: Sequence[str], expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first_ts = float("inf")
        self.last_ts = 0.0
        self.done_at: float | None = None
        self._stop = threading.Event()
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"bench-count-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 50,
                    "log_level": 3,
                }
            )
        )
        self._consumer.assign(_partitions(self._consumer, topic_names))
        self._thread = threading.Thread(target=self._run, name="bench-counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        c = self._consumer
        try:
            while not self._stop.is_set() and self.count < self.expected:
                msgs = c.consume(10000, 0.1)
                n = 0
                for m in msgs:
                    if m.error() is None:
                        n += 1
                if n:
                    ts = [m.timestamp()[1] for m in msgs if m.error() is None]
                    self.first_ts = min(self.first_ts, min(ts) / 1000)
                    self.last_ts = max(self.last_ts, max(ts) / 1000)
                    self.count += n
            if self.count >= self.expected:
                self.done_at = time.time()
        finally:
            c.close()

    def wait(self, timeout: float, alive: Callable[[], bool] | None = None) -> Count:
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            self._thread.join(0.2)
            if time.monotonic() > deadline:
                self._stop.set()
                raise TimeoutError(f"only {self.count} of {self.expected} records after {timeout:.0f}s")
            if alive is not None and not alive():
                self._stop.set()
                raise RuntimeError(
                    f"the process under test died after {self.count} of {self.expected} records"
                )
        assert self.done_at is not None
        return Count(self.count, self.done_at, self.first_ts, self.last_ts)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def tail_consumer(settings: Settings, topic_names: Sequence[str], **extra: Any) -> Consumer:
    """A consumer positioned at the (reported) end of some topics; callers filter what they expect."""
    conf = {"group.id": f"bench-tail-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False, "log_level": 3}
    conf.update(extra)
    consumer = Consumer(settings.kafka_config(**conf))
    tps = _partitions(consumer, topic_names)
    consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_END) for tp in tps])
    return consumer


def dead_letters(settings: Settings, topic: str) -> int:
    from streams.kafka.reader import read_to_end

    return sum(1 for _ in read_to_end(settings.kafka_config(), topic, timeout=30))


# --------------------------------------------------------------------------- child processes


@dataclass
class Child:
    """A process under test; `ready_at` is when it said (or its /ready page said) it was ready."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None
    ready_at: float | None = None
    headers: dict[str, str] = field(default_factory=dict)  # a bearer token for /ready, /metrics, /api

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 120.0, poll: float = 0.05) -> float:
        """Block until ready; returns time.time() at that moment."""
        deadline = time.monotonic() + timeout
        client = httpx.Client(timeout=1.0, trust_env=False)
        try:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                if self.url is not None:
                    try:
                        if client.get(f"{self.url}/ready", headers=self.headers).status_code == 200:
                            self.ready_at = time.time()
                            return self.ready_at
                    except httpx.HTTPError:
                        pass
                elif "READY" in self.log_tail(200_000):
                    self.ready_at = time.time()
                    return self.ready_at
                time.sleep(poll)
        finally:
            client.close()
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def spawn(
    name: str,
    argv: list[str],
    settings: Settings,
    log_dir: Path,
    *,
    web: bool,
    extra_env: dict[str, str] | None = None,
) -> Child:
    """Start `argv` with `settings` in its environment (SHARINGBUS_*), logging to a file."""
    port = free_port()
    settings = settings.model_copy(update={"web_port": port})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env.update(settings.to_env())
    env.update(extra_env or {})
    env["PYTHONUNBUFFERED"] = "1"
    if web:
        LocalIssuer.from_settings(settings)  # the issuer key exists before the child reads it
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    headers: dict[str, str] = {}
    if web:  # the harness is an ops caller and the analysts' recipient (the person view included)
        token = LocalIssuer.from_settings(settings).mint(
            "benchmark", recipient="vru_analysts", tier="individual", roles=["ops"]
        )
        headers = {"Authorization": f"Bearer {token}"}
    return Child(name, proc, log_path, f"http://127.0.0.1:{port}" if web else None, headers=headers)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
