"""Scale-out: two `sharebus worker` processes share a bus of 4-partition topics, the second joining
mid-stream, and together do exactly what one worker would.

Everything is compared with a reference computed in this process from the same inputs:
- enforcement: a single `streams.enforce.engine.Enforcer`, built as the worker builds it (same catalogue,
  agreements, key ring and registry), run over every raw partition in offset order. Each shared
  topic must hold exactly its outputs (byte for byte, key included; a copy replayed after the
  rebalance must be identical), the audit topic exactly its decisions (a replayed decision may only
  repeat, with its own time and chain position), `link.identifiers` exactly its link records, and
  PostgreSQL exactly one decision per (event, recipient); `sharebus audit verify --against-db` passes.
- linkage: `agents.linker.LinkerStage` over `link.identifiers` in its (single-partition) order must
  give exactly the facts and merges on `link.person`.
- views: profiles and area counts from those `link.person` records with the library functions
  (`streams.views.profiles`, `streams.views.area_counts`, `streams.views.snapshots.snapshot`), order-free: a
  merged token's facts end up on the token it merged into. Both workers must answer every person
  token ever named on `link.person` (200 with exactly the reference profile, or 404 for a token
  merged away or without factors), every week's area table, and agree with each other; the
  PostgreSQL sink and the compacted `views.person_profile` topic must hold the same complete set.
The suppression threshold is 1 and rounding is off so the area comparison is of exact counts; every
closed week is frozen once its counts have been quiet for a minute, after the whole stream has been
counted, so the frozen tables are the reference's (docs/disclosure-control.md). The stream ends with
records that make the linker merge people first seen as two (`stream`), after the second worker has
joined, so profiles move between partitions, and workers, once the work is split.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from agents.linker import LinkerStage
from agents.views_web import SERVED_BY_HEADER
from streams import topics
from streams.agreements import PlanWatcher
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache
from streams.deadletter import Output, RawRecord
from streams.enforce.audit import AuditChain, audit_partition
from streams.enforce.combine import is_combination
from streams.enforce.engine import Enforcer
from streams.enforce.link_facts import make_link_facts
from streams.kafka.admin import partition_counts
from streams.linkage.linker import Linker
from streams.linkage.view_tokens import ViewTokens, view_keys
from streams.privacy.keys import KeyRing
from streams.publish.simulate import Simulation
from streams.publish.simulate.people import make_pnc_id, make_upn
from streams.registry.client import registry_client
from streams.settings import Settings
from streams.views.area_counts import AreaCounts
from streams.views.factors import load_factors
from streams.views.periods import is_closed
from streams.views.profiles import Profile, apply_fact, parse_time, rescore
from streams.views.sink import area_rows
from streams.views.snapshots import SnapshotPolicy, snapshot
from tests.support.area_diff import explain_areas
from tests.support.stack import (
    Published,
    Publishers,
    Stack,
    crash_lines,
    metric_sum,
    open_stack,
    query,
    read_topic,
    scrape,
    stored_decisions,
    topic_names,
    wait_decided,
    wait_until,
)
from tests.workers import WorkerProcess

EVENTS = 3000
PEOPLE = 400
SPLIT = 20  # people first seen as two (a school's UPN, the police's PNC), joined late by a YJS record
RATE = 120.0  # events/s: the stream lasts ~25 s; the second worker enforces after ~17 s here
GATE = 0.85  # past 85% of the stream, the feeder only trickles until the second worker is enforcing
TRICKLE = 5.0
PARTITIONS = 4
CHAIN_FIELDS = ("at", "seq", "prev_hash", "hash")  # differ between a decision and its replay
T = TypeVar("T")

pytestmark = pytest.mark.slow


class GatedFeeder(threading.Thread):
    """Publishes at RATE; from event `gate_at` on, only a trickle until `gate` is set, so the stream
    never runs dry before the second worker holds partitions (yet keeps flowing while it joins)."""

    def __init__(self, settings: Settings, events: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        super().__init__(name="feeder", daemon=True)
        self.settings, self.events = settings, events
        self.gate_at = int(len(events) * GATE)
        self.gate = threading.Event()
        self.published: list[Published] = []
        self.trickled = 0
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        pubs = Publishers(self.settings)
        try:
            due = time.monotonic()
            for i, (partner, event_type, event) in enumerate(self.events):
                if self.stopped.is_set():
                    break
                self.published.append(pubs.publish(partner, event_type, event))
                if i >= self.gate_at and not self.gate.is_set():
                    self.trickled += 1
                    pubs.flush()
                    due += 1 / TRICKLE
                else:
                    due += 1 / RATE
                self.stopped.wait(max(0.0, due - time.monotonic()))
            pubs.close(120.0)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def stop(self) -> None:
        self.stopped.set()
        self.gate.set()
        self.join(30)

    def finish(self) -> list[Published]:
        self.join(180)
        assert not self.is_alive(), "feeder did not finish"
        if self.error is not None:
            raise self.error
        return self.published


def eventually(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 1.0) -> T:
    """`fetch()` until `done` says so or the deadline passes; the last value either way (assert on it)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(interval)
        value = fetch()
    return value


def stream(seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Simulated traffic, plus SPLIT people the linker must merge late in the stream.

    The simulation rarely makes the linker merge, and merges are what move a profile from the
    partition (and maybe the worker) of one person token to another's. So each of SPLIT made-up
    people opens the stream as two: a school exclusion naming a UPN and a police missing-person
    report naming a PNC, under different names. The last events of the stream, published after the
    second worker joined, are youth justice outcomes naming both: each joins the UPN's cluster and
    merges the PNC's into it.
    """
    rng = random.Random(seed)
    simulated = list(Simulation(seed=seed, people=PEOPLE).events(EVENTS - 3 * SPLIT))

    def like(partner: str, event_type: str, subject: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        event = copy.deepcopy(next(e for p, t, e in simulated if (p, t) == (partner, event_type)))
        event["envelope"]["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        kept = {
            k: v for k, v in event["subject"].items() if k not in ("nhs_number", "upn", "pnc_id", "local_id")
        }
        event["subject"] = kept | subject
        return partner, event_type, event

    early, late = [], []
    for i in range(SPLIT):
        upn, pnc = make_upn(rng, "Reading", 2015), make_pnc_id(rng, 2024)
        pupil = {
            "given_name": f"Ione{i}",
            "family_name": "Mergefield",
            "date_of_birth": date(2011, 1, 1 + i),
            "upn": upn,
        }
        suspect = {
            "given_name": f"Jory{i}",
            "family_name": "Splitmoor",
            "date_of_birth": date(2010, 2, 1 + i),
            "pnc_id": pnc,
        }
        early += [
            like("reading_schools", "education.exclusion", pupil),
            like("thames_valley_police", "police.missing_person", suspect),
        ]
        late.append(
            like("reading_yjs", "youth_justice.outcome", pupil | {"pnc_id": pnc, "local_id": f"YJ9{i:05d}"})
        )
    return early + simulated + late


# --------------------------------------------------------------------------- reference: enforcement


@dataclass
class Reference:
    shared: dict[str, set[tuple[str, bytes, bytes]]]  # topic -> (event id, key, value)
    decisions: dict[tuple[str, str], dict[str, Any]]  # (event id, recipient) -> audit body
    links: set[tuple[bytes, bytes]]  # link.identifiers (key, value)
    dead: set[tuple[bytes, bytes]]  # dlq.enforcer (key, value)


def _header(headers: Any, name: str) -> str:
    """First value of header `name` (a list of pairs, as both confluent-kafka and Output hold them)."""
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def _body(value: bytes | None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(value or b"{}")
    return {k: v for k, v in doc.items() if k not in CHAIN_FIELDS}


def reference_enforcement(settings: Settings) -> Reference:
    """One in-process Enforcer, configured as `agents.worker.build_worker` does, over every raw
    partition in offset order (fresh chains: the reference is one uninterrupted owner)."""
    catalogue = load_catalogue(settings.schemas_dir)
    keyring = KeyRing.load(settings.keyring_path)
    schemas = SchemaCache(registry_client(settings))
    n = settings.topic_partitions
    enforcer = Enforcer(
        catalogue=catalogue,
        plans=PlanWatcher(settings.agreements_dir, catalogue, keyring),
        schemas=schemas,
        audit_partitions=n,
        recover_chains=lambda ids: {c: AuditChain(c, partition=audit_partition(c, n)) for c in ids},
        link_facts=make_link_facts(settings, catalogue, keyring),
    )
    outputs: list[Output] = []
    for raw_topic in topic_names(settings, "raw."):
        records = [RawRecord.from_message(m) for m in read_topic(settings, raw_topic)]
        if records:
            enforcer.prepare(records)
            outputs += enforcer.process_batch(records).outputs
    ref = Reference(defaultdict(set), {}, set(), set())
    for out in outputs:
        if out.topic.startswith("shared."):
            ref.shared[out.topic].add(
                (_header(out.headers, "sharingbus.event_id"), out.key or b"", out.value or b"")
            )
        elif out.topic == topics.AUDIT_DECISIONS:
            body = _body(out.value)
            if is_combination(body):
                continue  # like wait_decided and stored_decisions: release decisions only
            assert (body["event_id"], body["recipient"]) not in ref.decisions
            ref.decisions[(body["event_id"], body["recipient"])] = body
        elif out.topic == topics.LINK_IDENTIFIERS:
            ref.links.add((out.key or b"", out.value or b""))
        elif out.topic == topics.dlq("enforcer"):
            ref.dead.add((out.key or b"", out.value or b""))
        else:
            raise AssertionError(f"the reference enforcer wrote to {out.topic}")
    ref.shared = dict(ref.shared)
    return ref


def bus_shared(settings: Settings) -> dict[str, list[tuple[str, bytes, bytes]]]:
    """Every record of every non-empty shared topic, duplicates included."""
    shared = {}
    for topic in topic_names(settings, "shared."):
        records = [
            (_header(m.headers(), "sharingbus.event_id"), m.key() or b"", m.value() or b"")
            for m in read_topic(settings, topic)
        ]
        if records:
            shared[topic] = records
    return shared


def pairs(settings: Settings, topic: str) -> list[tuple[bytes, bytes]]:
    return [(m.key() or b"", m.value() or b"") for m in read_topic(settings, topic)]


# --------------------------------------------------------------------------- reference: linker, views


def reference_link_person(
    settings: Settings, link_identifiers: list[tuple[bytes, bytes]]
) -> set[tuple[bytes, bytes]]:
    """`link.person` as one linker gives it for these `link.identifiers` records, in this order."""
    sent: list[Output] = []
    keyring = KeyRing.load(settings.keyring_path)
    kid = settings.linkage_key_id or keyring.ids[0]
    tokens = ViewTokens(view_keys(keyring, settings.agreements_dir, kid), kid)
    stage = LinkerStage(sent.extend, Linker, None, tokens)
    stage.process(
        [RawRecord(topics.LINK_IDENTIFIERS, 0, i, k, v) for i, (k, v) in enumerate(link_identifiers)]
    )
    return {(o.key or b"", o.value or b"") for o in sent if o.topic == topics.LINK_PERSON}


@dataclass
class Views:
    profiles: dict[str, Profile]  # surviving token -> profile (only tokens with factors)
    tokens: set[str]  # every person token named on link.person
    merges: dict[str, str]  # merged-away token -> the token it merged into
    areas: AreaCounts


def reference_views(link_person: Iterable[tuple[bytes, bytes]]) -> Views:
    """Profiles and area counts from link.person facts and merges, independent of arrival order."""
    docs = [json.loads(v) for _, v in link_person]
    into = {d["from"]: d["into"] for d in docs if d["kind"] == "merge"}
    facts = [d for d in docs if d["kind"] == "fact"]

    def survivor(token: str) -> str:
        seen = {token}
        while token in into:
            token = into[token]
            assert token not in seen, f"merge cycle through {token}"
            seen.add(token)
        return token

    profiles: dict[str, Profile] = {}
    for fact in facts:
        if fact.get("person_token") is None:
            continue
        token = survivor(fact["person_token"])
        profile = profiles.get(token) or Profile(token)
        if apply_fact(profile, fact):
            profiles[token] = profile
    tokens = {f["person_token"] for f in facts if f.get("person_token")} | set(into) | set(into.values())
    area_facts = [f for f in facts if not f.get("recipient")]  # person-view facts are not counted
    return Views(profiles, tokens, into, AreaCounts.of(area_facts))


# --------------------------------------------------------------------------- what the workers serve


def served_people(
    client: httpx.Client, workers: Sequence[WorkerProcess], tokens: Iterable[str]
) -> dict[str, list[tuple[int, Any, str | None]]]:
    """token -> per worker (status, body without tier and recipient, Served-By header)."""
    out: dict[str, list[tuple[int, Any, str | None]]] = {}
    for token in sorted(tokens):
        replies = []
        for w in workers:
            r = client.get(f"{w.url}/api/persons/{token}", headers=w.analyst)
            body = r.json()
            if isinstance(body, dict):  # who asked (the caller's tier and recipient), not the view
                body.pop("tier", None)
                body.pop("recipient", None)
            replies.append((r.status_code, body, r.headers.get(SERVED_BY_HEADER)))
        out[token] = replies
    return out


def served_areas(client: httpx.Client, workers: Sequence[WorkerProcess], weeks: Iterable[str]) -> list[Any]:
    """[per worker {week: table}] (the tier and recipient dropped)."""
    result = []
    for w in workers:
        tables = {}
        for week in weeks:
            body = client.get(f"{w.url}/api/areas", params={"week": week}, headers=w.analyst).json()
            body.pop("tier", None)
            body.pop("recipient", None)
            tables[week] = body
        result.append(tables)
    return result


# --------------------------------------------------------------------------- the test


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with open_stack(tmp_path / "bus", suppression_threshold=1, round_to=0, area_quiet_seconds=60) as s:
        yield s


@pytest.fixture
def feeders(stack: Stack) -> Iterator[list[GatedFeeder]]:
    """Feeders to stop before the stack goes (a failed test must not leave one publishing)."""
    started: list[GatedFeeder] = []
    yield started
    for feeder in started:
        feeder.stop()


def test_two_workers_on_four_partitions_lose_nothing_and_serve_correct_views(
    stack: Stack, feeders: list[GatedFeeder]
) -> None:
    settings = stack.settings
    assert settings.topic_partitions == PARTITIONS
    counts = partition_counts(settings)
    raw_topics = topic_names(settings, "raw.")
    assert raw_topics and {counts[t] for t in raw_topics} == {PARTITIONS}
    assert counts[topics.LINK_PERSON] == PARTITIONS

    events = stream(211)
    assert len(events) == EVENTS and len(events) - SPLIT >= int(EVENTS * GATE)  # the merges come last
    first = stack.start_worker("first", wait=False)
    feeder = GatedFeeder(settings, events)
    feeders.append(feeder)
    feeder.start()
    first.wait_ready(120)

    def consumed(worker: WorkerProcess) -> float:
        try:
            return metric_sum(scrape(worker), "sharingbus_events_consumed_total")
        except httpx.HTTPError:  # still starting
            return 0.0

    second = stack.start_worker("second", wait=False)
    wait_until(lambda: consumed(second) > 0, 150, "the second worker to enforce its partitions", 0.3)
    first_alone = consumed(first)
    published_before_join = len(feeder.published)
    feeder.gate.set()
    second.wait_ready(120)
    published = feeder.finish()
    ids = {p.event_id for p in published}
    assert len(ids) == EVENTS
    # The second worker took partitions over from a first worker that had been enforcing them,
    # while the partners were still publishing.
    assert 0 < first_alone < EVENTS
    assert published_before_join < EVENTS
    audit_records = wait_decided(settings, ids, timeout=120)

    # --- enforcement: exactly what one enforcer decides ---------------------------------------------
    ref = reference_enforcement(settings)
    assert {k[0] for k in ref.decisions} == ids
    assert ref.shared, "the simulated traffic should share something"

    shared = eventually(
        lambda: bus_shared(settings),
        lambda got: {t: set(r) for t, r in got.items()} == ref.shared,
        60,
    )
    assert {t: set(r) for t, r in shared.items()} == ref.shared
    copies: dict[tuple[str, str], set[tuple[bytes, bytes]]] = defaultdict(set)
    for topic, records in shared.items():
        for event_id, key, value in records:
            copies[(topic, event_id)].add((key, value))
    assert {k: len(v) for k, v in copies.items() if len(v) != 1} == {}

    decided: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in audit_records:
        decided[(record["event_id"], record["recipient"])].append(
            {k: v for k, v in record.items() if k not in CHAIN_FIELDS}
        )
    assert decided.keys() == ref.decisions.keys()
    differing = {k: len(v) for k, v in decided.items() if any(body != ref.decisions[k] for body in v)}
    assert differing == {}
    replayed = sum(len(v) - 1 for v in decided.values())

    # PostgreSQL holds exactly one decision per (event, recipient): replays are not stored twice.
    def stored() -> list[tuple[str, str, str]]:
        return sorted(stored_decisions(settings.postgres_dsn))

    want_stored = sorted((e, r, d["outcome"]) for (e, r), d in ref.decisions.items())
    assert eventually(stored, lambda rows: rows == want_stored, 60) == want_stored

    links = eventually(
        lambda: pairs(settings, topics.LINK_IDENTIFIERS), lambda got: set(got) == ref.links, 60
    )
    assert set(links) == ref.links
    assert set(pairs(settings, topics.dlq("enforcer"))) == ref.dead

    verify = stack.sharebus("audit", "verify", "--against-db")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK" in verify.stdout

    # Both workers enforced: each consumed raw events, and together at least every one of them.
    by_worker = [consumed(first), consumed(second)]
    assert min(by_worker) > 0, by_worker
    assert sum(by_worker) >= EVENTS, by_worker

    # --- linkage: exactly what one linker gives over link.identifiers --------------------------------
    want_person = reference_link_person(settings, links)
    person = eventually(lambda: pairs(settings, topics.LINK_PERSON), lambda got: set(got) == want_person, 60)
    assert set(person) == want_person

    # --- views: both workers serve exactly the reference, for every token and every week -------------
    views = reference_views(person)
    assert len(views.profiles) > 50 and len(views.tokens) > len(views.profiles)
    catalogue_factors = load_factors(settings.factors_path)
    weights, half_life = catalogue_factors.weights(), catalogue_factors.catalogue.half_life_days
    columns = [n for n, f in catalogue_factors.factors.items() if not f.requires_linked_adult]
    weeks = views.areas.weeks()
    policy = SnapshotPolicy.from_settings(settings)
    frozen = [w for w in weeks if is_closed(w, datetime.now(UTC), policy.lag)]
    tables = {week: snapshot(views.areas.table(week), columns, policy) for week in frozen}
    unpublished = {
        "rows": [],
        "cols": columns,
        "cells": [],
        "row_totals": [],
        "col_totals": [None] * len(columns),
        "total": None,
        "threshold": policy.threshold,
    }
    want_areas = {
        week: {"week": week, "weeks": frozen, **(tables[week].to_dict() if week in tables else unpublished)}
        for week in weeks
    }
    workers = [first, second]
    with httpx.Client(timeout=10.0) as client:
        areas = eventually(
            lambda: served_areas(client, workers, weeks), lambda got: got == [want_areas] * 2, 240, 2.0
        )
        if areas != [want_areas] * 2:
            docs = [json.loads(v) for _, v in person]
            area_facts = [d for d in docs if d["kind"] == "fact" and not d.get("recipient")]
            why = explain_areas(settings, area_facts, areas, want_areas)
            pytest.fail(f"the served area tables differ from the reference:\n{why}")

        def expected_reply(token: str, body: Any) -> Any:
            profile = views.profiles.get(token)
            if profile is None:
                return {"error": "unknown person token"}
            scored_at = body.get("scored_at") if isinstance(body, dict) else None
            # The score decays with time: take it at the instant the worker scored it.
            rescore(
                profile, parse_time(scored_at) if scored_at else parse_time("1970-01-01"), weights, half_life
            )
            return {"advisory": True, **profile.summary()}

        def mismatches(got: dict[str, list[tuple[int, Any, str | None]]]) -> dict[str, Any]:
            bad = {}
            for token, replies in got.items():
                want_status = 200 if token in views.profiles else 404
                for status, body, _ in replies:
                    if status != want_status or body != expected_reply(token, body):
                        bad[token] = [(s, b) for s, b, _ in replies]
            return bad

        people = eventually(
            lambda: served_people(client, workers, views.tokens), lambda got: not mismatches(got), 60, 2.0
        )
    wrong = mismatches(people)
    assert not wrong, (len(wrong), next(iter(wrong.items())))
    # Exactly one worker owns each token and answers it; the other proxies to it. Both own some.
    owner: dict[str, str] = {}
    for token, replies in people.items():
        local = [w.url for w, (_, _, served_by) in zip(workers, replies, strict=True) if served_by is None]
        assert len(local) == 1, (token, [r[2] for r in replies])
        owner[token] = local[0]
    owners = Counter(owner.values())
    assert set(owners) == {first.url, second.url}, owners
    # The late merges happened, and some moved a profile from one worker's partition to the other's.
    assert len(views.merges) >= SPLIT
    crossed = sum(owner[a] != owner[b] for a, b in views.merges.items())
    assert crossed > 0

    # --- the PostgreSQL sink and the compacted profile topic hold the same complete set --------------
    want_factors = sorted(
        (token, factor, stats.first_seen, stats.last_seen, stats.count, stats.partners)
        for token, p in views.profiles.items()
        for factor, stats in p.factors.items()
    )
    want_rows = sorted((row for week, table in tables.items() for row in area_rows(week, table)), key=str)
    want_sunk = (sorted(views.profiles), want_factors, want_rows)

    def sunk() -> tuple[list[Any], list[Any], list[Any]]:
        dsn = settings.postgres_dsn
        profiles = sorted(t for (t,) in query(dsn, "SELECT person_token FROM person_profiles"))
        factors = sorted(
            (t, f, first_seen, last_seen, c, list(p))
            for t, f, first_seen, last_seen, c, p in query(
                settings.postgres_dsn,
                "SELECT person_token, factor, first_seen, last_seen, count, partners FROM person_factors",
            )
        )
        rows = query(settings.postgres_dsn, "SELECT area, week, factor, count, suppressed FROM area_counts")
        return profiles, factors, sorted(rows, key=str)

    pg_profiles, pg_factors, pg_rows = eventually(sunk, lambda got: got == want_sunk, 60, 2.0)
    assert pg_profiles == want_sunk[0]
    assert pg_factors == want_factors
    assert pg_rows == want_rows

    def latest_profiles() -> set[str]:
        latest: dict[bytes, bytes | None] = {}
        for m in read_topic(settings, topics.VIEWS_PERSON_PROFILE):
            latest[m.key() or b""] = m.value()
        return {k.decode() for k, v in latest.items() if v is not None}

    emitted = eventually(latest_profiles, lambda got: got == set(views.profiles), 60, 2.0)
    assert emitted == set(views.profiles)

    for worker in workers:
        assert worker.proc.poll() is None, worker.log()[-3000:]
        assert crash_lines(worker.log()) == []
    print(
        f"\nscale-out: {EVENTS} events, second worker enforcing after {published_before_join} published "
        f"and {first_alone:.0f} enforced by the first alone "
        f"({feeder.trickled} trickled); consumed {by_worker[0]:.0f} + {by_worker[1]:.0f}; "
        f"{replayed} decisions replayed; profiles {len(views.profiles)} of {len(views.tokens)} tokens, "
        f"{len(views.merges)} merges ({crossed} across workers) "
        f"({dict(owners)}), {len(weeks)} weeks"
    )
