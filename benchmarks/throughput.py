"""Enforcer throughput and latency on the embedded broker, against a plain copy and a naive Faust agent.

    .venv/bin/python -m benchmarks.throughput [--events 60000] [--quick] [--variant batched]
                                               [--full-worker] [--profile /tmp/enforcer]

One run starts its own Tansu broker, registry and PostgreSQL database, pre-encodes simulated events
once (`prepare_event` + the AvroSerializer the Publisher uses; publishing speed is not measured),
writes them to the raw topics, then measures, each in its own process and consumer group:

  engine  the enforcement engine alone, in-process, no broker (the CPU ceiling of our code);
  (a)     copy: a confluent-kafka consume -> produce -> flush -> commit loop copying the raw topics
          to `copy.*` with the enforcer's producer (the upper bound of any Python consumer);
  (b)     naive: a Faust agent iterating events one by one through the same engine
          (`Enforcer.process`: decode, plans per recipient, encode, audit, link facts) and awaiting
          one `topic.send()` per output, to `naive.*` topics;
  (c)     enforcer: the real enforcer worker, `sharebus worker --roles enforcer`, as production runs
          it (the audit sink, linker and views are other roles, scaled as their own workers;
          `--full-worker`: `sharebus worker` with every role in the one process), realistic
          agreements (5 recipients; pseudonymise, generalise and drop);
  (d)     `--variant batched`: prototype of a contained fix, the same engine and producer fed by a
          confluent-kafka consumer (`consume(2000)`) in a thread of a Faust service, committing after
          every batch is delivered, to `batched.*` topics.

events/s runs from the moment the process under test is ready (its /ready page, or its READY line)
until a separate consumer has counted every expected output: for (b), (c) and (d) every audit
decision of every input event (one per plan, plus one default deny), counted record by record,
never from end offsets. Then p50/p99 publish-to-shared latency through (c) at a steady rate
(default 1000 events/s): raw records carry the publish time as their timestamp, shared records the
enforcer's produce time; receipt latency adds a recipient's fetch.

The last line printed is the c/b ratio alone, e.g. `c/b: 2.41`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter as Tally
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import (
    Child,
    Counter,
    Encoded,
    Stack,
    cpu_seconds,
    dead_letters,
    encode_events,
    log,
    percentile,
    produce_all,
    reframe,
    spawn,
    tail_consumer,
    workload,
)
from benchmarks.scaling import describe as describe_scaling
from benchmarks.scaling import scaling
from benchmarks.views_latency import describe as describe_views
from benchmarks.views_latency import views_latency
from streams.settings import Settings

BATCH = 2000
ROLES = ("copy", "naive", "batched", "noop")
NOOP_EVERY = 1000  # (r) the no-op agent reports progress once every this many events
IDLE_TOPIC = "bench.idle"
VAULT_EVERY = 500  # (b) writes the vault every this many events
FETCH_WAIT_ENV = "BENCH_FETCH_WAIT_MS"
EVENTS = 60_000  # default: every phase in about 6 minutes on 2 idle cores
SCALE_EVENTS = 50_000  # (w) events for each of the one- and two-worker counts


# =========================================================================== the processes under test


def _assemble(settings: Settings, prefix: str = "") -> tuple[Any, Any, list[str], Any]:
    """The engine, producer and vault buffer as `agents.worker.build_worker` assembles them; with a
    `prefix`, audit chains are recovered from (and outputs later go to) `<prefix><topic>`."""
    from streams import topics
    from streams.agreements import PlanWatcher
    from streams.avro.catalogue import load_catalogue
    from streams.avro.serde import SchemaCache
    from streams.enforce.audit_recovery import recover_chains
    from streams.enforce.engine import Enforcer
    from streams.enforce.link_facts import make_link_facts
    from streams.kafka.producer import DeliveringProducer
    from streams.privacy.keys import KeyRing
    from streams.registry.client import registry_client

    catalogue = load_catalogue(settings.schemas_dir)
    keyring = KeyRing.load(settings.keyring_path)
    plans = PlanWatcher(settings.agreements_dir, catalogue, keyring)
    schemas = SchemaCache(registry_client(settings))
    kafka_config = settings.kafka_config()
    n = settings.topic_partitions
    audit_topic = prefix + topics.AUDIT_DECISIONS
    vault = _vault(settings)
    enforcer = Enforcer(
        catalogue=catalogue,
        plans=plans,
        schemas=schemas,
        audit_partitions=n,
        recover_chains=lambda ids: recover_chains(kafka_config, ids, n, topic=audit_topic),
        link_facts=make_link_facts(settings, catalogue, keyring),
    )
    raw_topics = [t for _, _, t in catalogue.raw_topics()]
    return enforcer, DeliveringProducer(kafka_config), raw_topics, vault


def _vault(settings: Settings) -> Any:
    """The re-identification vault the worker writes each batch's rows to."""
    from streams.privacy.vault import Vault

    return Vault(settings.postgres_dsn)


def _prefixed(outputs: Sequence[Any], prefix: str) -> list[Any]:
    from streams.deadletter import Output

    return [Output(prefix + o.topic, o.key, o.value, o.headers, o.partition) for o in outputs]


def _all_raw_partitions(raw_topics: list[str], partitions: int) -> list[Any]:
    from streams.deadletter import RawRecord

    return [RawRecord(t, p, -1, None, None) for t in raw_topics for p in range(partitions)]


def patch_fetch_wait(ms: int) -> None:
    """Faust hard-codes aiokafka's `fetch_max_wait_ms=1500`, and Tansu does not wake a waiting fetch
    when records arrive (it checks at 1/2, 3/4, ... of the wait), so an idle-then-busy partition
    waits up to about 750 ms. Apache Kafka wakes fetches, so a lower wait only costs a few more empty
    fetches per second there."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    original = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = ms  # read by the Fetcher created in consumer.start()
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def _run_faust(app: Any, settings: Settings) -> None:
    from faust.worker import Worker as FaustWorker

    FaustWorker(
        app, loglevel=settings.log_level, logging_config=app.conf.logging_config, redirect_stdouts=False
    ).execute_from_commandline()


def role_copy(settings: Settings) -> None:
    """(a) consume -> produce -> wait for every delivery -> commit, per batch of up to 2000."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from streams.avro.catalogue import load_catalogue
    from streams.deadletter import Output
    from streams.kafka.producer import DeliveringProducer

    raw_topics = [t for _, _, t in load_catalogue(settings.schemas_dir).raw_topics()]
    consumer = Consumer(
        settings.kafka_config(
            **{"group.id": "bench-copy", "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )
    )
    consumer.assign(
        [TopicPartition(t, p, OFFSET_BEGINNING) for t in raw_topics for p in range(settings.topic_partitions)]
    )
    producer = DeliveringProducer(settings.kafka_config())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY", flush=True)
    while not stop.is_set():
        msgs: list[Any] = consumer.consume(BATCH, 0.05)
        outs = [Output(f"copy.{m.topic()}", m.key(), m.value()) for m in msgs if m.error() is None]
        if outs:
            producer.send_all(outs)
            consumer.commit(asynchronous=True)
    consumer.close()
    producer.close()


def role_naive(settings: Settings) -> None:
    """(b) the same engine work per event, with one awaited `topic.send()` per output."""
    import faust

    from agents import app as app_module
    from agents import health
    from streams.avro.serde import SchemaCache
    from streams.deadletter import RawRecord
    from streams.enforce.link_facts import write_vault_rows
    from streams.registry.client import registry_client

    prefix = "naive."
    enforcer, _producer, raw_topics, vault = _assemble(settings, prefix)
    enforcer.prepare(_all_raw_partitions(raw_topics, settings.topic_partitions))  # chains up front
    rows: list[Any] = []
    app = app_module.create_app(settings)
    source = app.topic(*raw_topics, value_serializer="raw", key_serializer="raw")
    out_topics: dict[str, Any] = {}

    def out_topic(name: str) -> Any:
        topic = out_topics.get(name)
        if topic is None:
            topic = out_topics[name] = app.topic(prefix + name, value_serializer="raw", key_serializer="raw")
        return topic

    @app.agent(source, name="naive", concurrency=1)
    async def naive(stream: faust.StreamT) -> None:
        async for event in stream.events():
            decided = enforcer.process_batch([RawRecord.from_event(event)])
            rows.extend(decided.vault_rows)
            if len(rows) >= VAULT_EVERY:  # the vault is written in batches
                write_vault_rows(vault, rows)
                rows.clear()
            for o in decided.outputs:
                await out_topic(o.topic).send(
                    key=o.key, value=o.value, partition=o.partition, headers=o.headers
                )

    schemas = SchemaCache(registry_client(settings))
    health.register(app, health.Readiness(app, schemas.reachable))
    _run_faust(app, settings)


def role_noop(settings: Settings) -> None:
    """(r) the reference ceiling the issue names: a Faust agent that does nothing with each event.

    It sends one small record every `NOOP_EVERY` events (and for the last, partial thousand) so the
    same counter that times (b) and (c) can time it; that is 0.1% of an output per event.
    """
    import faust

    from agents import app as app_module
    from agents import health
    from streams.avro.catalogue import load_catalogue

    app = app_module.create_app(settings)
    raw_topics = [t for _, _, t in load_catalogue(settings.schemas_dir).raw_topics()]
    source = app.topic(*raw_topics, value_serializer="raw", key_serializer="raw")
    progress = app.topic("noop.progress", value_serializer="raw", key_serializer="raw")
    total = int(os.environ["BENCH_EVENTS"])
    seen = [0]

    @app.agent(source, name="noop", concurrency=1)
    async def noop(stream: faust.StreamT) -> None:
        async for _event in stream.events():
            seen[0] += 1
            if seen[0] % NOOP_EVERY == 0 or seen[0] == total:
                await progress.send(value=str(seen[0]).encode())

    health.register(app, health.Readiness(app, lambda: True))
    _run_faust(app, settings)


def role_batched(settings: Settings) -> None:
    """(d) prototype: a Faust service hosting a confluent-kafka consumer thread that feeds the engine
    batches of up to 2000 records and commits only after `try_send_all` confirmed every output."""
    import mode
    from confluent_kafka import Consumer

    from agents import app as app_module
    from streams.deadletter import RawRecord
    from streams.enforce.link_facts import write_vault_rows

    prefix = "batched."
    enforcer, producer, raw_topics, vault = _assemble(settings, prefix)
    app = app_module.create_app(settings)
    stop = threading.Event()
    idle = app.topic(IDLE_TOPIC, value_serializer="raw", key_serializer="raw")

    @app.agent(idle, name="idle")
    async def _idle(
        stream: Any,
    ) -> None:  # Faust's conductor needs a subscription (the worker's other agents)
        async for _ in stream:
            pass

    def consume_loop() -> None:
        consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": "bench-batched",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 10000,
                    "heartbeat.interval.ms": 1000,
                }
            )
        )

        def on_assign(c: Any, partitions: list[Any]) -> None:
            print("READY", flush=True)

        def on_revoke(c: Any, partitions: list[Any]) -> None:
            enforcer.forget_chains()  # the batch before was delivered and committed already

        consumer.subscribe(raw_topics, on_assign=on_assign, on_revoke=on_revoke)
        spent = {"consume": 0.0, "engine": 0.0, "deliver": 0.0, "commit": 0.0, "batches": 0, "records": 0}
        last_report = time.monotonic()
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                msgs: list[Any] = consumer.consume(BATCH, 0.05)
                spent["consume"] += time.perf_counter() - t0
                records = [
                    RawRecord(
                        m.topic(), m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or [])
                    )
                    for m in msgs
                    if m.error() is None
                ]
                if not records:
                    continue
                attempt = 0
                while True:  # as agents/enforcer.run_batch: re-decide the whole batch on a failed delivery
                    t1 = time.perf_counter()
                    enforcer.prepare(records)
                    decided = enforcer.process_batch(records)
                    outputs = _prefixed(decided.outputs, prefix)
                    write_vault_rows(vault, decided.vault_rows)
                    t2 = time.perf_counter()
                    failed, _errors = producer.try_send_all(outputs)
                    spent["engine"] += t2 - t1
                    spent["deliver"] += time.perf_counter() - t2
                    if not failed:
                        break
                    attempt += 1
                    enforcer.forget_chains()
                    time.sleep(min(5.0, 0.5 * attempt))
                t3 = time.perf_counter()
                consumer.commit(asynchronous=True)
                spent["commit"] += time.perf_counter() - t3
                spent["batches"] += 1
                spent["records"] += len(records)
                if time.monotonic() - last_report > 2.0:
                    last_report = time.monotonic()
                    print("STATS " + " ".join(f"{k}={v:.2f}" for k, v in spent.items()), flush=True)
        finally:
            consumer.close()

    @app.service
    class BatchedEnforcer(mode.Service):
        async def on_start(self) -> None:
            self._thread = threading.Thread(target=consume_loop, name="batched-enforcer", daemon=True)
            self._thread.start()

        async def on_stop(self) -> None:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 30)

    _run_faust(app, settings)


# =========================================================================== the benchmark


def _output_specs(settings: Settings, prefix: str) -> list[Any]:
    """Every topic the enforcer writes, renamed with `prefix` (same partitions and configs)."""
    from streams import topics
    from streams.agreements import PlanWatcher
    from streams.avro.catalogue import load_catalogue
    from streams.kafka.admin import TopicSpec
    from streams.kafka.topology import bus_topics
    from streams.privacy.keys import KeyRing

    catalogue = load_catalogue(settings.schemas_dir)
    planset = PlanWatcher(settings.agreements_dir, catalogue, KeyRing.load(settings.keyring_path)).current()
    written = ("shared.", topics.AUDIT_DECISIONS, topics.LINK_IDENTIFIERS, "dlq.")
    return [
        TopicSpec(prefix + s.name, s.partitions, s.config)
        for s in bus_topics(settings, catalogue, planset)
        if s.name.startswith(written)
    ]


def _prepare_topics(settings: Settings) -> None:
    """The bus's topics, plus the copy/naive/batched output topics, all with explicit partitions."""
    from streams.agreements import PlanWatcher
    from streams.avro.catalogue import load_catalogue
    from streams.kafka.admin import TopicSpec, ensure_topics
    from streams.kafka.topology import bus_topics
    from streams.privacy.keys import KeyRing

    catalogue = load_catalogue(settings.schemas_dir)
    planset = PlanWatcher(settings.agreements_dir, catalogue, KeyRing.load(settings.keyring_path)).current()
    specs = bus_topics(settings, catalogue, planset)
    specs += [TopicSpec("copy." + t) for _, _, t in catalogue.raw_topics()]
    specs += [TopicSpec(IDLE_TOPIC), TopicSpec("noop.progress")]
    for prefix in ("naive.", "batched."):
        specs += _output_specs(settings, prefix)
    ensure_topics(settings, specs)


def _spawn_role(
    role: str, settings: Settings, log_dir: Path, group: str, fetch_wait_ms: int | None, events: int
) -> Child:
    s = settings.model_copy(update={"consumer_group": group, "data_dir": settings.data_dir / role})
    argv = [sys.executable, "-m", "benchmarks.throughput", "--role", role]
    env = {"BENCH_EVENTS": str(events)}
    if fetch_wait_ms:
        env[FETCH_WAIT_ENV] = str(fetch_wait_ms)
    return spawn(role, argv, s, log_dir, web=role in ("naive", "noop", "enforcer"), extra_env=env)


class Profiler:
    """py-spy on a child process, from ready until stopped (raw collapsed stacks, per thread)."""

    def __init__(self, pid: int, out: Path, gil: bool) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        argv = [str(exe), "record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--threads"]
        argv.append("--gil" if gil else "--idle")
        self.out = out
        self.proc = subprocess.Popen(
            [*argv, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def measure(
    name: str,
    child: Child,
    settings: Settings,
    topic_names: list[str],
    expected: int,
    n_events: int,
    timeout: float,
    broker_pid: int | None = None,
    profile: Path | None = None,
    gil: bool = True,
) -> dict[str, Any]:
    """Wait for `child` to be ready, then count `expected` records on `topic_names`."""
    counter = Counter(settings, topic_names, expected)  # assigned before the child can write
    ready = child.wait_ready()
    cpu0 = cpu_seconds(child.proc.pid)
    broker0 = cpu_seconds(broker_pid) if broker_pid else float("nan")
    profiler = Profiler(child.proc.pid, profile, gil) if profile is not None else None
    try:
        count = counter.wait(timeout, child.alive)
    finally:
        counter.stop()
        if profiler is not None:
            profiler.stop()
    elapsed = count.done_at - ready
    span = count.last_ts - count.first_ts
    cpu = cpu_seconds(child.proc.pid) - cpu0
    broker_cpu = (cpu_seconds(broker_pid) - broker0) if broker_pid else float("nan")
    result = {
        "name": name,
        "events": n_events,
        "outputs": count.records,
        "seconds": elapsed,
        "eps": n_events / elapsed,
        "eps_span": n_events / span if span > 0 else float("nan"),
        "cpu": cpu,
        "broker_cpu": broker_cpu,
    }
    log(
        f"{name}: {n_events} events, {count.records} outputs counted in {elapsed:.2f}s "
        f"= {result['eps']:,.0f} ev/s (first->last output {span:.2f}s = {result['eps_span']:,.0f} ev/s; "
        f"{cpu:.1f} CPU s in the process, {broker_cpu:.1f} in the broker)"
    )
    return result


def plain_python_us(settings: Settings, events: Sequence[Encoded], repeat: int = 3) -> float:
    """The issue's calibration point in microseconds an event, best of `repeat`: fastavro decode,
    HMAC-SHA256 of two identifiers, free text dropped, fastavro encode. No plans, audit or linkage."""
    import hashlib
    import hmac
    import io

    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    from streams.avro.catalogue import load_catalogue
    from streams.avro.serde import decode_header

    catalogue = load_catalogue(settings.schemas_dir)
    key = b"k" * 32
    shapes = {
        name: (parse_schema(et.schema), [p.split(".") for p in et.paths_with_tag("pii:free_text")])
        for name, et in catalogue.event_types.items()
    }
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for e in events:
            parsed, free = shapes[e.event_type]
            record: Any = schemaless_reader(io.BytesIO(decode_header(e.value)[1]), parsed, None)
            subject = record.get("subject") or {}
            for field in ("local_id", "family_name"):
                value = subject.get(field)
                if value is not None:
                    subject[field] = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
            for *parents, leaf in free:
                holder = record
                for part in parents:
                    holder = holder.get(part) or {}
                if leaf in holder:
                    holder[leaf] = None
            out = io.BytesIO()
            schemaless_writer(out, parsed, record)
        best = min(best, (time.perf_counter() - started) / len(events))
    return best * 1e6


def engine_alone(settings: Settings, events: Sequence[Encoded], repeat: int = 2) -> float:
    """The engine's own speed: `process_batch` in batches of 2000, fresh chains, no broker I/O,
    with the collector set as a worker sets it (`agents.worker.GC_THRESHOLD`)."""
    import gc

    from agents.worker import GC_THRESHOLD
    from streams.deadletter import RawRecord
    from streams.enforce.audit import AuditChain, audit_partition
    from streams.enforce.link_facts import write_vault_rows

    enforcer, _producer, _raw, vault = _assemble(settings)
    n = settings.topic_partitions
    enforcer._recover_chains = lambda ids: {i: AuditChain(i, partition=audit_partition(i, n)) for i in ids}
    records = [RawRecord(e.topic, i % n, i, e.key, e.value) for i, e in enumerate(events)]
    best = 0.0
    threshold = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            for i in range(0, len(records), BATCH):
                batch = records[i : i + BATCH]
                enforcer.prepare(batch)
                write_vault_rows(vault, enforcer.process_batch(batch).vault_rows)
            best = max(best, len(records) / (time.perf_counter() - started))
    finally:
        gc.set_threshold(*threshold)
    return best


STAGES = (
    ("partner produce -> broker ack", "published", "ack"),
    ("broker ack -> enforcer poll", "ack", "polled"),
    ("poll -> decided", "polled", "decided"),
    ("decided -> outputs acked", "decided", "acked"),
    ("outputs acked -> commit", "acked", "committed"),
    ("publish -> outputs acked", "published", "acked"),
)


def stage_budget(
    published: dict[str, float], acks: dict[str, tuple[str, int, int, float]], batches: list[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """p50/p99/max in ms of each stage, per event: the publish and broker-ack times the benchmark saw,
    joined by (topic, partition, offset) with the enforcer's per-batch stamps (`streams.kafka.stages`)."""
    import bisect

    spans: dict[tuple[str, int], list[tuple[int, int, dict[str, Any]]]] = {}
    for b in batches:
        for topic, partition, first, last in b["ranges"]:
            spans.setdefault((topic, partition), []).append((first, last, b))
    for lst in spans.values():
        lst.sort(key=lambda x: x[0])
    firsts = {k: [x[0] for x in v] for k, v in spans.items()}
    values: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    for eid, (topic, partition, offset, ack_latency) in acks.items():
        key = (topic, partition)
        i = bisect.bisect_right(firsts.get(key, []), offset) - 1
        if i < 0:
            continue
        first, last, batch = spans[key][i]
        if not first <= offset <= last or not batch["committed"]:
            continue
        stamps = {**batch, "published": published[eid], "ack": published[eid] + ack_latency}
        for name, a, b in STAGES:
            values[name].append(stamps[b] - stamps[a])
    out = {}
    for name, vs in values.items():
        vs.sort()
        out[name] = {
            "n": len(vs),
            "p50": percentile(vs, 50) * 1000,
            "p99": percentile(vs, 99) * 1000,
            "max": (vs[-1] * 1000) if vs else float("nan"),
        }
    return out


def latency(
    settings: Settings,
    events: Sequence[Encoded],
    rate: float,
    child: Child,
    stage_log: Path | None = None,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Publish `events` at `rate`/s with the partner SDK's producer settings (timestamp = publish
    time) and time their shared outputs; with the enforcer's `stage_log`, per stage as well."""
    from confluent_kafka import Producer

    from streams.kafka.admin import partition_counts
    from streams.kafka.stages import read_stage_log
    from streams.publish.publisher import PRODUCER_DEFAULTS

    shared = sorted(t for t in partition_counts(settings) if t.startswith("shared."))
    # A recipient with the bus's consumer defaults: a shorter fetch wait on every shared partition
    # costs Tansu more CPU than the enforcer's own fetch (docs/performance.md), and the goal,
    # publish->shared, is read from the shared record's timestamp, not from this consumer.
    consumer = tail_consumer(settings, shared, **{"fetch.wait.max.ms": settings.fetch_max_wait_ms})
    consumer.consume(1000, 1.0)  # resolve positions before publishing
    published: dict[str, float] = {}
    acks: dict[str, tuple[str, int, int, float]] = {}
    to_ts: list[float] = []
    to_rx: list[float] = []
    done = threading.Event()

    def collect() -> None:
        while not done.is_set():
            msgs: list[Any] = consumer.consume(1000, 0.05)
            for m in msgs:
                if m.error() is not None:
                    continue
                now = time.time()
                eid = next((v.decode() for k, v in m.headers() or () if k == "sharingbus.event_id"), None)
                sent = published.get(eid) if eid is not None else None
                if sent is None:
                    continue
                to_ts.append(m.timestamp()[1] / 1000 - sent)
                to_rx.append(now - sent)

    def acked(eid: str) -> Any:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                acks[eid] = (msg.topic(), msg.partition(), msg.offset(), msg.latency() or 0.0)

        return on_delivery

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    producer = Producer(
        settings.kafka_config(**{**PRODUCER_DEFAULTS, "linger.ms": settings.publish_linger_ms})
    )
    cpu0 = cpu_seconds(child.proc.pid)
    broker0 = cpu_seconds(broker_pid) if broker_pid else float("nan")
    start = time.monotonic()
    for i, e in enumerate(events):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        now = time.time()
        published[e.event_id] = now
        producer.produce(
            e.topic, key=e.key, value=e.value, timestamp=int(now * 1000), on_delivery=acked(e.event_id)
        )
        producer.poll(0)
    producer.flush(30)
    spent = time.monotonic() - start
    achieved = len(events) / spent
    cpu = (cpu_seconds(child.proc.pid) - cpu0) / spent
    broker_cpu = ((cpu_seconds(broker_pid) - broker0) / spent) if broker_pid else float("nan")
    time.sleep(3.0)  # let the last batches through
    done.set()
    collector.join(5)
    consumer.close()
    if not child.alive():
        raise RuntimeError("the enforcer died during the latency run")
    to_ts.sort()
    to_rx.sort()
    result = {
        "rate": achieved,
        "samples": len(to_ts),
        "p50": percentile(to_ts, 50) * 1000,
        "p99": percentile(to_ts, 99) * 1000,
        "rx_p50": percentile(to_rx, 50) * 1000,
        "rx_p99": percentile(to_rx, 99) * 1000,
        "max": (to_ts[-1] * 1000) if to_ts else float("nan"),
        "stages": stage_budget(published, acks, read_stage_log(stage_log)) if stage_log else {},
        "cpu": cpu,
        "broker_cpu": broker_cpu,
    }
    log(
        f"latency at {achieved:,.0f} ev/s: {len(to_ts)} shared records; publish->shared "
        f"p50 {result['p50']:.1f} ms p99 {result['p99']:.1f} ms (max {result['max']:.0f}); "
        f"receipt p50 {result['rx_p50']:.1f} p99 {result['rx_p99']:.1f} ms"
    )
    return result


def describe_lower_rates(below: dict[float, dict[str, Any]]) -> list[str]:
    """The same two latencies at lower rates, each on a fresh bus: where the 2-core machine stops
    keeping up."""
    lines = ["  at lower rates (each on a fresh bus):"]
    for rate, r in sorted(below.items()):
        parts = [f"    {rate:>5,.0f} events/s:"]
        if "latency" in r:
            lat = r["latency"]
            parts.append(
                f"p99 publish->shared {lat['p99']:.1f} ms (p50 {lat['p50']:.1f}; broker"
                f" {lat['broker_cpu']:.0%}, enforcer {lat['cpu']:.0%} of a core)"
            )
        if "v" in r:
            parts.append(f"p99 publish->profile served {r['v']['served']['p99']:.0f} ms")
        lines.append(" ".join(parts))
    return lines


def format_stages(stages: dict[str, dict[str, float]]) -> list[str]:
    """The latency budget as table rows (ms)."""
    rows = []
    for name, v in stages.items():
        rows.append(
            f"    {name:<32} p50 {v['p50']:7.1f}  p99 {v['p99']:7.1f}  max {v['max']:7.1f} ms"
            f"  ({v['n']} events)"
        )
    return rows


_WAITS = (
    "select (selectors.py",
    "wait (threading.py",
    "_wait_for_tstate_lock",
    "flush (",
    "poll (",
    "consume (",
    "sleep (",
    "get (queue.py",
    "acquire (",
)


def summarise_profile(path: Path, top: int = 12) -> str:
    """Share of samples by category (engine stage, producer, Faust/aiokafka, ...), from py-spy raw output."""
    from streams.settings import ROOT

    lines_cache: dict[str, list[str]] = {}

    def source_line(file: str, line: int) -> str:
        if file not in lines_cache:
            try:
                lines_cache[file] = (ROOT / file).read_text().splitlines()
            except OSError:
                lines_cache[file] = []
        src = lines_cache[file]
        return src[line - 1] if 0 < line <= len(src) else ""

    def classify(frames: list[str]) -> str:
        joined = ";".join(frames)
        leaf = frames[-1]
        if any(w in leaf for w in _WAITS):
            if "try_send_all" in joined or "(streams/kafka/producer.py" in joined:
                return "waiting: producer flush (deliveries)"
            if "run_in_executor" in joined or "(concurrent/futures/thread.py" in joined:
                return "waiting: executor thread idle"
            return "waiting: event loop / consumer thread idle"
        if "try_send_all" in joined or "(streams/kafka/producer.py" in joined:
            return "producer (produce calls, delivery callbacks)"
        if "link_facts" in joined:
            return "engine: link facts (factors, linkage tokens)"
        if "append (streams/enforce/audit.py" in joined:
            return "engine: audit record (JSON + sha256)"
        if "apply (streams/agreements/" in joined:
            return "engine: plans (apply per recipient)"
        if "(prometheus_client/" in joined or "(streams/metrics.py" in joined:
            return "engine: metrics"
        if "released_tokens" in joined:
            return "engine: released tokens"
        if "encode (streams/enforce/engine.py" in joined:
            return "engine: encode outputs (fastavro)"
        if "prepare (streams/enforce/engine.py" in joined:
            return "engine: prepare (plans, chain recovery)"
        if "(streams/enforce/engine.py" in leaf:
            file, line = leaf.rsplit("(", 1)[1].rstrip(")").rsplit(":", 1)
            text = source_line(file, int(line))
            if "schemaless_reader" in text or "decode_header" in text:
                return "engine: decode (fastavro)"
            return "engine: other (validation, dispatch)"
        if "(streams/enforce/engine.py" in joined:
            return "engine: other (validation, dispatch)"
        if "_raw_record" in joined:
            return "agent: Faust event -> RawRecord"
        if "(aiokafka/" in joined:
            return "aiokafka (fetch, parse, send)"
        if "(faust/sensors/" in joined:
            return "Faust sensors (Monitor per event)"
        if "(faust/" in joined or "(mode/" in joined:
            return "Faust stream machinery (+mode)"
        if "(asyncio/" in joined or "(selectors.py" in joined:
            return "asyncio loop"
        return "other"

    totals: Tally[str] = Tally()
    threads: Tally[str] = Tally()
    for raw in path.read_text().splitlines():
        stack, _, count = raw.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        n = int(count)
        threads[frames[0]] += n
        totals[classify(frames[1:] or frames)] += n
    total = sum(totals.values()) or 1
    out = [
        f"py-spy samples: {total} (by thread: "
        + ", ".join(f"{t} {c / total:.0%}" for t, c in threads.most_common(4))
        + ")"
    ]
    out += [f"  {c / total:6.1%}  {k}" for k, c in totals.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=EVENTS, help="events for the throughput runs")
    parser.add_argument("--quick", action="store_true", help="20k events and a 10 s latency run")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency run: events per second")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="latency run: duration")
    parser.add_argument("--variant", choices=("none", "batched"), default="none", help="also measure (d)")
    parser.add_argument("--full-worker", action="store_true", help="(c) as `sharebus worker`, every agent")
    parser.add_argument(
        "--only",
        default="rabclwv",
        help="which of r, a, b, c, l (latency), w (1 vs 2 enforcer workers), v (views latency) to run "
        "(default: all)",
    )
    parser.add_argument("--views-seconds", type=float, default=10.0, help="views latency run: duration")
    parser.add_argument(
        "--lower-rates",
        default="250,500",
        help="latency (l) and views (v) also at these rates, comma-separated ('' for none)",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the enforcer during (c): raw stacks to this path"
    )
    parser.add_argument("--profile-all-threads", action="store_true", help="py-spy every thread, idle too")
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        help="patch Faust's fetch_max_wait_ms (1500) in (b), (c), (d): proposal P1",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role:
        from streams.logs import configure_logging
        from streams.settings import get_settings

        settings = get_settings()
        (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
        configure_logging(settings)
        if os.environ.get(FETCH_WAIT_ENV):
            patch_fetch_wait(int(os.environ[FETCH_WAIT_ENV]))
        roles = {"copy": role_copy, "naive": role_naive, "batched": role_batched, "noop": role_noop}
        roles[args.role](settings)
        return

    n = 20_000 if args.quick and args.events == EVENTS else args.events
    lat_seconds = 10.0 if args.quick and args.latency_seconds == 20.0 else args.latency_seconds
    n_latency = int(args.rate * lat_seconds)
    n_views = int(args.rate * args.views_seconds) if "v" in args.only else 0
    lower_rates = sorted({float(r) for r in args.lower_rates.split(",") if r.strip()} - {args.rate})
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log(f"warning: load average {load_before:.2f} before the run: other processes share the CPUs")
    results: dict[str, dict[str, Any]] = {}
    timeout = max(120.0, n / 300)
    with Stack() as stack:
        log_dir = stack.workdir / "logs"
        log(f"work directory {stack.workdir} (logs, broker logs)")
        with stack.bus("encode") as bus0:
            settings0 = bus0.settings
            assert settings0 is not None
            t = time.monotonic()
            encoded = encode_events(settings0, n + n_latency, seed=args.seed)
            events, late = encoded[:n], encoded[n:]
            # a population the first events never met, so each person's first fact is a new profile
            fresh = encode_events(settings0, n_views, seed=args.seed + 1, people=100_000) if n_views else []
            w = workload(settings0, events)
            log(
                f"encoded {len(encoded)} events in {time.monotonic() - t:.1f}s; expect {w.audits} audit "
                f"decisions ({w.audits / n:.2f}/event), {w.shared} plan applications"
            )
            results["engine"] = {"eps": engine_alone(settings0, events[: min(n, 20_000)])}
            log(f"engine alone (in-process, no broker): {results['engine']['eps']:,.0f} ev/s")
            results["plain"] = {"us": plain_python_us(settings0, events[: min(n, 20_000)])}
            log(f"plain Python decode + 2 HMACs + drop + encode: {results['plain']['us']:.1f} us/event")

        def phase(key: str, name: str, role: str, group: str, out_topics: list[str], expected: int) -> None:
            with stack.bus(key) as bus:
                settings = bus.settings
                assert settings is not None
                _prepare_topics(settings)
                produce_all(settings, reframe(settings, events))
                if role == "worker":
                    s = settings.model_copy(
                        update={
                            "consumer_group": group,
                            "data_dir": settings.data_dir / role,
                        }
                    )
                    roles = "all" if args.full_worker else "enforcer"
                    argv = [sys.executable, "-m", "sharebus.main", "worker", "--roles", roles]
                    child = spawn("worker", argv, s, log_dir, web=True)
                else:
                    child = _spawn_role(role, settings, log_dir, group, args.fetch_wait_ms, n)
                try:
                    results[key] = measure(
                        name,
                        child,
                        settings,
                        out_topics,
                        expected,
                        n,
                        timeout,
                        bus.broker_pid,
                        profile=args.profile if key == "c" else None,
                        gil=not args.profile_all_threads,
                    )
                    if key == "c":
                        dead = dead_letters(settings, "dlq.enforcer")
                        if dead:
                            log(f"warning: {dead} events dead-lettered by the enforcer")
                finally:
                    child.stop()

        def latency_phase(rate: float, evs: list[Encoded]) -> dict[str, Any]:
            """On a bus of its own, as every phase: Tansu lists every stored batch of a partition on
            each fetch of it, so a broker the throughput phase filled would slow this one down."""
            with stack.bus(f"l{rate:.0f}") as bus:
                settings = bus.settings
                assert settings is not None
                _prepare_topics(settings)
                stages = stack.workdir / f"latency-stages-{rate:.0f}.jsonl"
                s = settings.model_copy(
                    update={
                        "consumer_group": "sharingbus",
                        "data_dir": settings.data_dir / "latency",
                        "stage_log_path": stages,
                    }
                )
                argv = [sys.executable, "-m", "sharebus.main", "worker", "--roles", "enforcer"]
                child = spawn(f"latency-worker-{rate:.0f}", argv, s, log_dir, web=True)
                try:
                    child.wait_ready(timeout=180)
                    return latency(settings, reframe(settings, evs), rate, child, stages, bus.broker_pid)
                finally:
                    child.stop()

        raw_topics = sorted({e.topic for e in events})
        if "r" in args.only:
            phase("r", "(r) no-op Faust agent", "noop", "bench-noop", ["noop.progress"], -(-n // NOOP_EVERY))
        if "a" in args.only:
            phase("a", "(a) copy", "copy", "bench-copy", ["copy." + t for t in raw_topics], n)
        if "b" in args.only:
            phase("b", "(b) naive Faust", "naive", "bench-naive", ["naive.audit.decisions"], w.audits)
        if args.variant == "batched":
            phase(
                "d",
                "(d) batched prototype",
                "batched",
                "bench-batched-faust",
                ["batched.audit.decisions"],
                w.audits,
            )
        if "c" in args.only:
            name = "(c) enforcer" + (" (full worker)" if args.full_worker else "")
            phase("c", name, "worker", "sharingbus", ["audit.decisions"], w.audits)
        if "l" in args.only and n_latency:
            results["latency"] = latency_phase(args.rate, late)
            for rate in lower_rates:  # where the broker is not yet the bottleneck
                below = latency_phase(rate, late[: int(rate * lat_seconds)])
                results.setdefault("below", {})[rate] = {"latency": below}
        if "w" in args.only:
            part = events[:SCALE_EVENTS]  # enough for several seconds of two workers, in a short run
            audits = w.audits if len(part) == len(events) else workload(settings0, part).audits
            results["w"] = scaling(stack, _prepare_topics, part, audits, log_dir, timeout)
        if fresh:
            results["v"] = views_latency(stack, _prepare_topics, fresh, args.rate, log_dir)
            for rate in lower_rates:
                part = fresh[: int(rate * args.views_seconds)]
                results.setdefault("below", {}).setdefault(rate, {})["v"] = views_latency(
                    stack, _prepare_topics, part, rate, log_dir
                )

    print()
    print(f"Sharing Bus throughput, {n} simulated events, {os.cpu_count()} CPUs, Tansu embedded broker")
    print(f"  engine alone (no broker)   {results['engine']['eps']:>9,.0f} events/s")
    print(
        f"  plain Python reference     {results['plain']['us']:>9.1f} us/event  "
        "(decode + 2 HMACs + drop free text + encode; the issue measured ~14)"
    )
    labels = {
        "r": "(r) no-op Faust agent",
        "a": "(a) confluent copy",
        "b": "(b) naive Faust agent",
        "c": "(c) enforcer" + (" (full worker)" if args.full_worker else ""),
        "d": "(d) batched prototype",
    }
    for key, label in labels.items():
        if key in results:
            r = results[key]
            print(
                f"  {label:<26} {r['eps']:>9,.0f} events/s  ({r['outputs']} outputs in {r['seconds']:.1f}s, "
                f"CPU: process {r['cpu'] / r['seconds']:.0%}, "
                f"broker {r['broker_cpu'] / r['seconds']:.0%} of a core)"
            )
    if "latency" in results:
        r = results["latency"]
        print(
            f"  latency at {r['rate']:,.0f} events/s ({r['samples']} shared records): publish->shared "
            f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; to a recipient's consumer "
            f"p50 {r['rx_p50']:.1f} ms, p99 {r['rx_p99']:.1f} ms; CPU of a core meanwhile: enforcer "
            f"{r['cpu']:.0%}, broker {r['broker_cpu']:.0%}"
        )
        if r["stages"]:
            print("  latency budget per event (enforcer stage log joined with publish and broker-ack times):")
            print("\n".join(format_stages(r["stages"])))
    if "w" in results:
        print("\n".join(describe_scaling(results["w"])))
    if "v" in results:
        print("\n".join(describe_views(results["v"])))
    if "below" in results:
        print("\n".join(describe_lower_rates(results["below"])))
    if "a" in results and "c" in results:
        print(f"  c/a: {results['c']['eps'] / results['a']['eps']:.2f}")
    if "d" in results and "b" in results:
        print(f"  d/b: {results['d']['eps'] / results['b']['eps']:.2f}")
    if "d" in results and "c" in results:
        print(f"  d/c: {results['d']['eps'] / results['c']['eps']:.2f}")
    if args.profile is not None and args.profile.exists():
        print(summarise_profile(args.profile))
    print(
        f"  total run time {time.monotonic() - started:.0f}s; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (before > 0.5: something else was using the CPUs)"
    )
    # The figures the goals are read from, last and in this order (c/b stays the very last line).
    if "latency" in results:
        print(f"p99 publish->shared: {results['latency']['p99']:.1f} ms")
    if "v" in results:
        print(f"p99 publish->profile served: {results['v']['served']['p99']:.0f} ms")
    if "r" in results and "c" in results:
        print(f"c/r: {results['c']['eps'] / results['r']['eps']:.2f}")
    if "w" in results:
        print(f"2 workers / 1 worker: {results['w']['ratio']:.2f}")
    if "b" in results and "c" in results:
        print(f"c/b: {results['c']['eps'] / results['b']['eps']:.2f}")


if __name__ == "__main__":
    main()
