"""Memory of a worker holding person profiles: RSS per profile, and what more events for the same people cost.

    .venv/bin/python -m benchmarks.memory [--profiles 100000] [--more 2] [--heavy-people 100]

One run starts its own Tansu broker, registry and PostgreSQL database (`benchmarks._common.Stack`)
and one real `sharebus worker` subprocess (every agent: enforcer, audit sink, linker, views, web),
then feeds the views `link.person` fact records directly, byte for byte as the linker emits them
(`agents.linker.LinkerStage.process`: the `link.identifiers` record without `tokens`/`invalid`, plus
`kind: "fact"` and `person_token`, compact sorted JSON, keyed by the person token, produced with
librdkafka's default partitioner). The linker itself is therefore idle: its clusters are not in the
figures. Person tokens are real `streams.linkage.clusters.person_token`s; event types, partners and factors
come from `factors.yaml` and `schemas/partners.yaml`.

Phases, each followed by one RSS reading (VmRSS from /proc, the median of five samples a second
apart) once the worker has caught up:
  0 profiles            the worker ready, nothing fed;
  25% / 50% / 100%      one fact for each new person (its first);
  replay                every fact of the previous phases produced again, identical bytes (what an
                        at-least-once replay upstream looks like): nothing may grow;
  more 1..R             one NEW event for every person per round: growth per (person, event) while
                        the profiles are under their cap;
  heavy                 `--heavy-people` people get events in steps up to 3x the per-profile cap
                        (`streams.views.profiles.MAX_CONTRIBUTIONS`): RSS must stop growing at the cap.
                        These events name all the heavy people as subjects of the same events
                        (subject_index = the person), so the area counts, which keep one key per
                        distinct event until retention removes it, grow by one key per event only
                        and the step measures the profiles.

"Caught up" is checked, never slept for: the views consumer group's committed offsets on
`link.person`, `views.profile_moves` and `views.area_facts` reach the true end offsets
(`streams.kafka.offsets.end_offsets`, from fetch high watermarks: Tansu's ListOffsets is wrong), the
worker's `/api/health` counts every fact applied and every profile, and nothing is left to emit.

The last line printed is `rss_per_profile_bytes: N`, (RSS at 100% - RSS at 0) / profiles.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from agents.views import PROFILES
from benchmarks._common import Child, Stack, log, spawn
from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.kafka import topology
from streams.kafka.offsets import end_offsets
from streams.linkage.clusters import person_token
from streams.settings import ROOT, Settings
from streams.views.profiles import MAX_CONTRIBUTIONS, Profile

GROUP = "bench-memory"
NOW = datetime(2026, 3, 15, tzinfo=UTC)
DISTRICTS = [f"RG{i}" for i in range(1, 32)] + [f"OX{i}" for i in range(1, 30)] + ["SL1", "SL6", "HP13"]


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Kind:
    """What an event of one rule says: its type, a partner that publishes it, the factors it gives."""

    event_type: str
    partner: str
    factors: tuple[str, ...]


def event_kinds(settings: Settings) -> list[Kind]:
    """One kind per (factors.yaml rule, publishing partner), factors that need a linked adult left out."""
    doc = yaml.safe_load(settings.factors_path.read_text(encoding="utf-8"))
    hidden = {n for n, f in doc["factors"].items() if f.get("requires_linked_adult")}
    catalogue = load_catalogue(settings.schemas_dir)
    kinds = []
    for rule in doc["rules"]:
        factors = tuple(f for f in rule["factors"] if f not in hidden)
        if factors:
            kinds += [
                Kind(rule["event_type"], p, factors) for p in catalogue.partners_for(rule["event_type"])
            ]
    return kinds


def _dumps(doc: dict[str, Any]) -> bytes:
    """As `agents.linker._dumps`: compact, sorted keys."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def event_id(*parts: object) -> str:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


class Facts:
    """Deterministic `link.person` fact records for person i's j-th event."""

    def __init__(self, settings: Settings, seed: int = 1) -> None:
        self.kinds = event_kinds(settings)
        self.seed = seed
        self._tokens: dict[int, str] = {}

    def token(self, person: int) -> str:
        token = self._tokens.get(person)
        if token is None:
            token = self._tokens[person] = person_token(f"bench-memory:{self.seed}:{person}")
        return token

    def fact(self, person: int, j: int, *, shared_event: str | None = None, subject_index: int = 0) -> bytes:
        rnd = random.Random(f"{self.seed}:{person}:{j}" if shared_event is None else f"{shared_event}")
        kind = rnd.choice(self.kinds)
        district = rnd.choice(DISTRICTS)
        occurred = NOW - timedelta(seconds=rnd.randrange(0, 2 * 365 * 86400))
        record = {
            "event_id": shared_event or event_id(self.seed, person, j),
            "subject_index": subject_index,
            "event_type": kind.event_type,
            "source_partner": kind.partner,
            "occurred_at": occurred.isoformat(),
            "role": "victim" if kind.event_type == "police.crime_recorded" else None,
            "factors": list(kind.factors),
            "area": {"lsoa": f"E0101{rnd.randrange(6000, 7000)}", "district": district},
        }
        record.update(kind="fact", person_token=self.token(person))
        return _dumps(record)


# --------------------------------------------------------------------------- the worker


def rss_bytes(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in bytes (Linux /proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


@dataclass
class Reading:
    phase: str
    profiles: int
    facts_fed: int
    rss: int
    hwm: int
    seconds: float  # from the end of feeding to caught up
    stored: int = 0  # bytes of the latest changelog value of every profile (the table, serialised)
    heavy_kept: int = 0  # most contributions any heavy person's profile holds
    heavy_bytes: int = 0  # largest changelog value of a heavy person's profile
    health: dict[str, Any] = field(default_factory=dict)


class Changelog:
    """Follows the profiles table's changelog: the latest value of every key, read to partition EOF."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        self.topic = f"{settings.consumer_group}-{PROFILES}-changelog"  # Faust's naming
        self.partitions = partitions
        self.sizes: dict[str, int] = {}
        self.values: dict[str, bytes] = {}
        self.watch: set[str] = set()
        self.position = dict.fromkeys(range(partitions), 0)
        self.kafka_config = settings.kafka_config()
        self.consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"bench-memory-changelog-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                }
            )
        )
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(partitions)])

    def catch_up(self, timeout: float = 300.0) -> None:
        """Read up to the true end offsets (fetch high watermarks, `streams.kafka.offsets`)."""
        ends = end_offsets(self.kafka_config, [(self.topic, p) for p in range(self.partitions)])
        deadline = time.monotonic() + timeout
        while any(self.position[p] < ends[(self.topic, p)] for p in range(self.partitions)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic}: not read to {ends} (at {self.position})")
            for msg in self.consumer.consume(10000, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"{self.topic}: {err}")
                self.position[msg.partition()] = msg.offset() + 1
                key = json.loads(msg.key())
                value = msg.value()
                if value:
                    self.sizes[key] = len(value)
                    if key in self.watch:
                        self.values[key] = value
                else:
                    self.sizes.pop(key, None)
                    self.values.pop(key, None)

    def stored(self) -> int:
        return sum(self.sizes.values())

    def kept(self, token: str) -> int:
        value = self.values.get(token)
        return len(Profile.from_dict(json.loads(value)).contributions) if value else 0

    def close(self) -> None:
        self.consumer.close()


class Feeder:
    """Produces fact records to `link.person` and counts them."""

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(
            settings.kafka_config(**{"linger.ms": 20, "batch.num.messages": 10000, "acks": "all"})
        )
        self.fed = 0
        self.errors: list[Any] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(err)

    def feed(self, records: Iterable[tuple[str, bytes]]) -> int:
        n = 0
        for key, value in records:
            while True:
                try:
                    self.producer.produce(
                        topics.LINK_PERSON, key=key.encode(), value=value, on_delivery=self._on_delivery
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            n += 1
        self.producer.flush(120)
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} facts not delivered: {self.errors[0]}")
        self.fed += n
        return n


class Watcher:
    """Waits until the worker has applied, stored and emitted everything fed so far."""

    def __init__(self, settings: Settings, child: Child, partitions: int) -> None:
        self.settings, self.child = settings, child
        assert child.url is not None
        self.http = httpx.Client(base_url=child.url, headers=child.headers, timeout=10.0, trust_env=False)
        self.tps = [(topics.LINK_PERSON, p) for p in range(partitions)]
        self.tps += [(topology.VIEWS_PROFILE_MOVES, p) for p in range(partitions)]
        self.tps += [(topology.VIEWS_AREA_FACTS, 0)]
        self.offsets = Consumer(
            settings.kafka_config(**{"group.id": settings.consumer_group, "enable.auto.commit": False})
        )

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/api/health").json()
        return body

    def lag(self) -> int:
        ends = end_offsets(self.settings.kafka_config(), self.tps)
        committed = self.offsets.committed([TopicPartition(t, p) for t, p in self.tps], timeout=10)
        lag = 0
        for tp in committed:
            end = ends[(tp.topic, tp.partition)]
            lag += end - max(tp.offset, 0) if end > 0 else 0
        return lag

    def wait(self, profiles: int, applied: int, timeout: float) -> tuple[float, dict[str, Any]]:
        started = time.monotonic()
        deadline = started + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise RuntimeError(f"the worker exited:\n{self.child.log_tail()}")
            try:
                last = self.health()
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if (
                last.get("status") == "ok"
                and last["profiles"] >= profiles
                and last["facts_applied"] >= applied
                and last["pending_emits"] == 0
                and self.lag() == 0
            ):
                # One more look: an emission may have been running when pending_emits said 0.
                time.sleep(2.5)
                last = self.health()
                if last["pending_emits"] == 0 and self.lag() == 0:
                    return time.monotonic() - started, last
            time.sleep(0.5)
        raise TimeoutError(
            f"not caught up after {timeout:.0f}s (want {profiles} profiles, {applied} facts applied): {last}"
        )

    def close(self) -> None:
        self.http.close()
        self.offsets.close()


def sample_rss(pid: int, n: int = 5, every: float = 1.0) -> tuple[int, int]:
    samples = []
    for i in range(n):
        if i:
            time.sleep(every)
        samples.append(rss_bytes(pid))
    return int(statistics.median(s[0] for s in samples)), max(s[1] for s in samples)


# --------------------------------------------------------------------------- the run


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def batches(items: Iterator[tuple[str, bytes]], size: int = 50_000) -> Iterator[list[tuple[str, bytes]]]:
    chunk: list[tuple[str, bytes]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(args: argparse.Namespace) -> list[Reading]:
    readings: list[Reading] = []
    with Stack(partitions=args.partitions) as stack, stack.bus("memory") as bus:
        assert bus.settings is not None
        settings = bus.settings.model_copy(
            update={"consumer_group": GROUP, "data_dir": bus.settings.data_dir / "worker"}
        )
        log_dir = stack.workdir / "logs"
        extra_env = dict(item.split("=", 1) for item in args.worker_env)
        child = spawn(
            "worker",
            [sys.executable, "-m", "sharebus.main", "worker"],
            settings,
            log_dir,
            web=True,
            extra_env=extra_env,
        )
        log(f"worker pid {child.proc.pid}, log {child.log_path}")
        try:
            child.wait_ready(timeout=180)
            facts = Facts(settings, args.seed)
            feeder = Feeder(settings)
            watcher = Watcher(settings, child, args.partitions)
            changelog = Changelog(settings, args.partitions)
            heavy = min(args.heavy_people, args.profiles)
            changelog.watch = {facts.token(i) for i in range(heavy)}
            applied = 0

            def reading(phase: str, profiles: int) -> Reading:
                t = time.monotonic()
                seconds, health = watcher.wait(profiles, applied, args.timeout)
                rss, hwm = sample_rss(child.proc.pid)
                changelog.catch_up()
                r = Reading(phase, health["profiles"], feeder.fed, rss, hwm, seconds, health=health)
                r.stored = changelog.stored()
                if changelog.values:
                    r.heavy_kept = max(changelog.kept(t) for t in changelog.values)
                    r.heavy_bytes = max(len(v) for v in changelog.values.values())
                readings.append(r)
                log(
                    f"{phase}: {r.profiles:,} profiles, {r.facts_fed:,} facts fed, RSS {mib(rss)} "
                    f"(peak {mib(hwm)}), table {mib(r.stored)}, caught up in {time.monotonic() - t:.1f}s; "
                    f"dead letters {health['dead_letters']}"
                )
                return r

            # Faust needs a moment after /ready to be assigned and recover its (empty) tables.
            reading("0 profiles", 0)
            n = args.profiles
            done = 0
            for step in (n // 4, n // 2, n):
                for chunk in batches((facts.token(i), facts.fact(i, 0)) for i in range(done, step)):
                    applied += feeder.feed(chunk)
                done = step
                reading(f"{step:,} profiles", step)

            for chunk in batches((facts.token(i), facts.fact(i, 0)) for i in range(n)):
                applied += feeder.feed(chunk)
            reading("replay (same facts again)", n)

            for r in range(1, args.more + 1):
                for chunk in batches((facts.token(i), facts.fact(i, r)) for i in range(n)):
                    applied += feeder.feed(chunk)
                reading(f"more {r} (+1 new event per person)", n)

            if heavy:
                cap = MAX_CONTRIBUTIONS
                steps = sorted({cap // 2, cap, 2 * cap, 3 * cap})
                given = 1 + args.more  # events each person has so far
                for target in steps:
                    records = [
                        (
                            facts.token(i),
                            facts.fact(i, j, shared_event=event_id(args.seed, "heavy", j), subject_index=i),
                        )
                        for j in range(given, target)
                        for i in range(heavy)
                    ]
                    applied += feeder.feed(records)
                    given = max(given, target)
                    reading(f"heavy: {heavy} people x {target} events", n)
            watcher.close()
            changelog.close()
        finally:
            code = child.stop()
            log(f"worker stopped ({code})")
    if not args.keep_workdir:
        shutil.rmtree(stack.workdir, ignore_errors=True)
    return readings


def report(readings: Sequence[Reading], args: argparse.Namespace) -> None:
    by = {r.phase: r for r in readings}
    base = readings[0]
    n = args.profiles
    full = by[f"{n:,} profiles"]
    print(
        f"{'phase':<36} {'profiles':>9} {'facts fed':>10} {'RSS':>12} {'peak RSS':>12} "
        f"{'table (JSON)':>13} {'catch-up':>9}"
    )
    for r in readings:
        print(
            f"{r.phase:<36} {r.profiles:>9,} {r.facts_fed:>10,} {mib(r.rss):>12} {mib(r.hwm):>12} "
            f"{mib(r.stored):>13} {r.seconds:>8.1f}s"
        )
    print()
    for count in (n // 4, n // 2, n):
        r = by[f"{count:,} profiles"]
        grown = r.rss - base.rss
        print(f"RSS 0 -> {count:,} profiles: {mib(grown)}, {grown / count:,.0f} B/profile")
    half = by[f"{n // 2:,} profiles"]
    print(
        f"RSS {n // 2:,} -> {n:,} profiles (marginal): {(full.rss - half.rss) / (n - n // 2):,.0f} B/profile"
    )
    print(f"table (latest changelog values) at {n:,} profiles: {full.stored / n:,.0f} B/profile")
    replay = by["replay (same facts again)"]
    print(
        f"replay of all {n:,} facts: RSS {replay.rss - full.rss:+,} B, "
        f"table {replay.stored - full.stored:+,} B"
    )
    prev = replay
    for i in range(1, args.more + 1):
        r = by[f"more {i} (+1 new event per person)"]
        print(
            f"more {i} (+1 new event for each of {n:,} people): RSS {(r.rss - prev.rss) / n:+,.0f} B, "
            f"table {(r.stored - prev.stored) / n:+,.0f} B per (person, event)"
        )
        prev = r
    heavy = [r for r in readings if r.phase.startswith("heavy")]
    if heavy:
        print(f"heavy people (cap {MAX_CONTRIBUTIONS} contributions per profile):")
        for r in heavy:
            print(
                f"  {r.phase}: largest profile keeps {r.heavy_kept} contributions, "
                f"{r.heavy_bytes:,} B serialised; RSS {mib(r.rss)} ({r.rss - prev.rss:+,} B)"
            )
            prev = r
    print(f"rss_per_profile_bytes: {(full.rss - base.rss) / n:.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000, help="distinct people (default 100000)")
    parser.add_argument("--more", type=int, default=2, help="rounds of one new event per person (default 2)")
    parser.add_argument(
        "--heavy-people", type=int, default=100, help="people fed up to 3x the cap (0: skip; default 100)"
    )
    parser.add_argument("--partitions", type=int, default=4, help="partitions of link.person (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0, help="longest wait per phase, seconds")
    parser.add_argument("--json", type=Path, help="also write the readings here")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the broker and worker logs")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the worker, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.profiles < 4:
        parser.error("--profiles must be at least 4")
    log(f"memory benchmark: {args.profiles:,} profiles, root {ROOT}")
    readings = run(args)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in readings], indent=2, default=str))
    report(readings, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
