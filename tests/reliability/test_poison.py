"""Poison and fuzzed input interleaved with real traffic: the bad is dead-lettered, the good flows.

Hostile records (hypothesis-generated, derandomized: the same cases on every run) are produced
straight onto partners' raw topics, shuffled among valid events:
random bytes, truncated Avro, a wrong magic byte, unknown schema ids, valid Avro of another event
type (registered under its own subject), a spoofed `source_partner`, a wrong `envelope.event_type`,
an `event_id` that is not a UUID, invalid UTF-8 inside a string, empty values and tombstones.
Valid events include identifiers with a wrong NHS check digit and names and free text full of
Unicode edge cases (control characters, combining marks, right-to-left text, emoji, ...).

Asserted: every valid event is decided exactly as the compiled plans say (invalid NHS numbers
withheld and flagged, never tokenised); every bad record is in `dlq.enforcer` once, with its
original bytes and the reason its kind calls for (`sharingbus.dlq.reason`), and its event id
reaches no audit record and no shared topic; the dead-letter metric counts them; and the worker
never restarts (same PID, no agent crash or internal error in its log).

Two cases have tests of their own below, so a failure names its cause: oversized fields (1 MB,
which the broker takes, so the enforcer must deal with them without losing the rest of the batch)
and a NUL character in a name (valid Avro that PostgreSQL text cannot hold).
"""

from __future__ import annotations

import copy
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streams import deadletter as dl
from streams import topics
from streams.avro.catalogue import Catalogue
from streams.avro.serde import SchemaCache, encode
from streams.enforce.combine import is_combination
from streams.privacy.identifiers import nhs_check_digit
from streams.publish.publisher import prepare_event
from streams.publish.simulate import Simulation
from streams.registry.client import registry_client
from streams.settings import Settings
from tests.reliability.conftest import Sizes
from tests.support.stack import (
    Stack,
    audit_records,
    crash_lines,
    expected_from_raw,
    header,
    metric_sum,
    produce_all,
    raw_producer,
    read_topic,
    scrape,
    shared_event_ids,
    tracebacks,
    wait_until,
)

pytestmark = pytest.mark.slow

DECODE = {dl.DECODE_ERROR}
ANY_REJECTION = {dl.DECODE_ERROR, dl.UNKNOWN_SCHEMA, dl.SCHEMA_MISMATCH, dl.VALIDATION, dl.SPOOFED_PARTNER}
FIRST_UNUSED_ID = 100_000  # the registry hands out small sequential ids


def collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """`n` examples of `strategy`, the same ones on every run (hypothesis as a generator)."""
    out: list[Any] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(example: Any) -> None:
        out.append(example)

    gather()
    assert len(out) >= n // 2, f"hypothesis produced only {len(out)} of {n} examples"
    return out


@dataclass
class Frame:
    """One valid event as its partner would frame it."""

    partner: str
    event_type: str
    topic: str
    record: dict[str, Any]
    value: bytes


@dataclass
class Material:
    """Valid events, framed with the registry's ids, to derive hostile records from."""

    catalogue: Catalogue
    schema_ids: dict[str, int]  # event type -> id registered under its raw subject
    frames: list[Frame] = field(default_factory=list)

    def frame(self, event_type: str, record: dict[str, Any]) -> bytes:
        return encode(self.catalogue.event_type(event_type).parsed, self.schema_ids[event_type], record)


def build_material(
    settings: Settings, catalogue: Catalogue, events: list[tuple[str, str, dict[str, Any]]]
) -> Material:
    schemas = SchemaCache(registry_client(settings))
    material = Material(catalogue, {})
    for partner, event_type, event in events:
        topic = topics.raw(partner, event_type)
        if event_type not in material.schema_ids:
            material.schema_ids[event_type] = schemas.id_for(
                topics.value_subject(topic), catalogue.event_type(event_type).schema
            )
        record = prepare_event(catalogue, partner, event_type, event)
        material.frames.append(Frame(partner, event_type, topic, record, material.frame(event_type, record)))
    return material


# --- valid but awkward events ----------------------------------------------------------------------


def subjects(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if isinstance(record.get("subject"), dict):
        yield record["subject"]
    for person in record.get("people") or ():
        if isinstance(person.get("subject"), dict):
            yield person["subject"]


def break_nhs_check_digit(nhs: str) -> str:
    digits = nhs.replace(" ", "")
    good = nhs_check_digit(digits[:9])
    bad = next(d for d in "0123456789" if good is None or int(d) != good)
    return digits[:9] + bad


SURROGATES: tuple[Literal["Cs"], ...] = ("Cs",)  # not encodable as UTF-8
# NUL is left out here: it has a test of its own (test_a_nul_character_in_a_name_does_not_stall_the_stream).
UNICODE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=SURROGATES, exclude_characters="\x00"),
    min_size=1,
    max_size=40,
) | st.sampled_from(
    [
        "\x01\x1f\x7f",
        "Zoë\u0301\u0301",
        "\u202eeman\u202c",  # right-to-left override
        "O\u2019Brien-\u200d\U0001f9d1\u200d\U0001f680",
        "\ufeffAnne\u00a0Marie",
        "\U0010ffff",
        "\u0130stanbul",
        "x" * 4000,
    ]
)


# --- hostile records -------------------------------------------------------------------------------


@dataclass
class Bad:
    """One hostile record and the dead-letter reasons its kind allows."""

    kind: str
    topic: str
    value: bytes | None
    reasons: set[str]
    event_id: str | None = None  # when it carries one: that id must reach nobody


def _classify_random(value: bytes) -> set[str]:
    if len(value) < 5 or value[0] != 0:
        return DECODE
    if int.from_bytes(value[1:5], "big") >= FIRST_UNUSED_ID:
        return {dl.UNKNOWN_SCHEMA}
    return ANY_REJECTION  # a small id may exist: garbage under a real schema, rejected somehow


def hostile_strategy(m: Material) -> st.SearchStrategy[Bad]:
    n = len(m.frames)
    frames = st.integers(0, n - 1).map(lambda i: m.frames[i])
    partners = sorted(m.catalogue.partners)
    raw_topics = [t for _, et, t in m.catalogue.raw_topics() if et in m.schema_ids]

    def random_bytes() -> st.SearchStrategy[Bad]:
        return st.tuples(st.binary(max_size=600), st.sampled_from(raw_topics)).map(
            lambda a: Bad("random_bytes", a[1], a[0], _classify_random(a[0]))
        )

    def truncated() -> st.SearchStrategy[Bad]:
        def cut(f: Frame, at: float) -> Bad:
            end = 5 + int(at * (len(f.value) - 6))
            return Bad("truncated", f.topic, f.value[:end], DECODE, f.record["envelope"]["event_id"])

        return st.builds(cut, frames, st.floats(0, 1, exclude_max=True))

    def bad_magic() -> st.SearchStrategy[Bad]:
        return st.builds(
            lambda f, b: Bad("bad_magic", f.topic, bytes([b]) + f.value[1:], DECODE),
            frames,
            st.integers(1, 255),
        )

    def unknown_id() -> st.SearchStrategy[Bad]:
        return st.builds(
            lambda f, i: Bad(
                "unknown_id", f.topic, b"\x00" + i.to_bytes(4, "big") + f.value[5:], {dl.UNKNOWN_SCHEMA}
            ),
            frames,
            st.integers(FIRST_UNUSED_ID, 2**32 - 1),
        )

    def other_schema() -> st.SearchStrategy[Bad]:
        def move(a: tuple[Frame, str]) -> Bad:
            f, topic = a
            return Bad("other_schema", topic, f.value, {dl.SCHEMA_MISMATCH}, f.record["envelope"]["event_id"])

        return (
            st.tuples(frames, st.sampled_from(raw_topics))
            .filter(lambda a: topics.parse_raw(a[1])[1] != a[0].event_type)
            .map(move)
        )

    def with_envelope(
        kind: str, key: str, values: st.SearchStrategy[str], reasons: set[str]
    ) -> st.SearchStrategy[Bad]:
        def make(a: tuple[Frame, str, uuid.UUID]) -> Bad:
            f, value, eid = a
            record = copy.deepcopy(f.record)
            record["envelope"]["event_id"] = str(eid)
            record["envelope"][key] = value
            return Bad(kind, f.topic, m.frame(f.event_type, record), reasons, str(eid))

        return (
            st.tuples(frames, values, st.uuids(version=4))
            .filter(lambda a: a[0].record["envelope"][key] != a[1])
            .map(make)
        )

    spoofed = with_envelope(
        "spoofed_partner",
        "source_partner",
        st.sampled_from(partners)
        | st.text(max_size=30)
        | st.sampled_from(["thames_vаlley_police", "THAMES_VALLEY_POLICE"]),
        {dl.SPOOFED_PARTNER},
    )
    wrong_type = with_envelope(
        "wrong_event_type",
        "event_type",
        st.sampled_from(sorted(m.catalogue.event_types)),
        {dl.SCHEMA_MISMATCH},
    )

    def not_a_uuid(text: str) -> bool:
        try:
            uuid.UUID(text)
        except ValueError:
            return True
        return False

    def bad_uuid() -> st.SearchStrategy[Bad]:
        def make(f: Frame, text: str) -> Bad:
            record = copy.deepcopy(f.record)
            record["envelope"]["event_id"] = text
            return Bad("bad_uuid", f.topic, m.frame(f.event_type, record), {dl.DECODE_ERROR, dl.VALIDATION})

        return st.builds(make, frames, st.text(max_size=40).filter(not_a_uuid))

    def invalid_utf8() -> st.SearchStrategy[Bad]:
        bad_sequences = st.sampled_from(
            [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]
        )

        def make(f: Frame, seq: bytes, eid: uuid.UUID) -> Bad:
            record = copy.deepcopy(f.record)
            record["envelope"]["event_id"] = str(eid)
            placeholder = "\x01<" + "\x07" * len(seq) + ">\x01"  # the same length in UTF-8 as `seq`
            target = next(subjects(record), None)
            if target is not None:
                target["given_name"] = placeholder
            else:
                record["envelope"]["event_type"] = f.event_type + placeholder  # no subject: another string
            value = m.frame(f.event_type, record)
            assert value.count(placeholder.encode()) == 1
            value = value.replace(placeholder.encode(), b"\x01<" + seq + b">\x01")
            return Bad("invalid_utf8", f.topic, value, DECODE, str(eid))

        return st.builds(make, frames, bad_sequences, st.uuids(version=4))

    empty = st.builds(lambda f, v: Bad("empty", f.topic, v, DECODE), frames, st.sampled_from([b"", None]))

    return st.one_of(
        random_bytes(),
        truncated(),
        bad_magic(),
        unknown_id(),
        other_schema(),
        spoofed,
        wrong_type,
        bad_uuid(),
        invalid_utf8(),
        empty,
    )


# --- the test --------------------------------------------------------------------------------------


def _dlq_by_key(settings: Settings) -> dict[bytes, list[tuple[str | None, bytes | None]]]:
    found: dict[bytes, list[tuple[str | None, bytes | None]]] = defaultdict(list)
    for msg in read_topic(settings, topics.dlq("enforcer")):
        found[msg.key() or b""].append((header(msg, "sharingbus.dlq.reason"), msg.value()))
    return found


def test_poison_and_fuzzed_input_is_dead_lettered_and_valid_events_flow(stack: Stack, sizes: Sizes) -> None:
    settings = stack.settings
    catalogue = stack.catalogue
    worker = stack.start_worker(wait=False)  # it starts while the test builds its records
    rng = random.Random(303)
    events = list(Simulation(seed=303, people=sizes.people).events(sizes.poison_valid))
    material = build_material(settings, catalogue, events)

    # Valid but awkward: wrong NHS check digits, Unicode names and free text.
    broken_nhs: set[str] = set()
    odd_unicode: set[str] = set()
    texts = iter(collect(UNICODE, max(60, sizes.poison_valid // 5)))
    for frame in material.frames:
        subs = list(subjects(frame.record))
        with_nhs = [s for s in subs if s.get("nhs_number")]
        if with_nhs and rng.random() < 0.3:
            with_nhs[0]["nhs_number"] = break_nhs_check_digit(with_nhs[0]["nhs_number"])
            broken_nhs.add(frame.record["envelope"]["event_id"])
        elif subs and rng.random() < 0.3:
            text = next(texts, None)
            if text is None:
                continue
            subs[0]["given_name"], subs[0]["family_name"] = text, text[::-1]
            if isinstance(frame.record.get("location"), dict):
                frame.record["location"]["description"] = text
            odd_unicode.add(frame.record["envelope"]["event_id"])
        else:
            continue
        frame.value = material.frame(frame.event_type, frame.record)
    assert broken_nhs and odd_unicode

    bads = collect(hostile_strategy(material), sizes.poison_bad)
    kinds = Counter(b.kind for b in bads)
    assert len(kinds) == 10, kinds
    valid_ids = {f.record["envelope"]["event_id"] for f in material.frames}

    records: list[tuple[str, bytes | None, bytes | None]] = [
        (f.topic, f.record["envelope"]["event_id"].encode(), f.value) for f in material.frames
    ]
    records += [(b.topic, f"poison-{i:06d}".encode(), b.value) for i, b in enumerate(bads)]
    rng.shuffle(records)

    worker.wait_ready()
    pid = worker.proc.pid
    produce_all(raw_producer(settings), records)

    wanted_keys = {f"poison-{i:06d}".encode() for i in range(len(bads))}

    def all_dead() -> dict[bytes, list[tuple[str | None, bytes | None]]] | None:
        found = _dlq_by_key(settings)
        return found if wanted_keys <= found.keys() else None

    try:
        dlq = wait_until(all_dead, 180, f"{len(bads)} dead letters", 0.5)
    except AssertionError as exc:
        log = worker.log()
        raise AssertionError(
            f"{exc}; crashes: {crash_lines(log)[:2]}; errors: {tracebacks(log)[-2:]}"
        ) from None

    def decided() -> list[dict[str, Any]] | None:
        audit = [r for r in audit_records(settings) if not is_combination(r)]  # release decisions
        return audit if valid_ids <= {r["event_id"] for r in audit} else None

    audit = wait_until(decided, 120, "every valid event to be decided", 0.5)

    # Every bad record: dead-lettered once, original bytes, a reason its kind calls for.
    wrong: dict[str, Counter[str]] = defaultdict(Counter)
    for i, bad in enumerate(bads):
        letters = dlq[f"poison-{i:06d}".encode()]
        assert len(letters) == 1, (bad.kind, letters)
        reason, value = letters[0]
        assert value == (bad.value or None) or (not bad.value and not value), bad.kind
        if reason not in bad.reasons:
            wrong[bad.kind][str(reason)] += 1
    assert wrong == {}, f"unexpected dead-letter reasons by kind: {dict(wrong)}"
    assert dlq.keys() == wanted_keys, "a valid event was dead-lettered"

    # Nothing hostile reached anyone: no audit record, no shared record carries its event id.
    hostile_ids = {b.event_id for b in bads if b.event_id} - valid_ids
    assert hostile_ids
    assert hostile_ids.isdisjoint({r["event_id"] for r in audit})
    shared = shared_event_ids(settings)
    assert hostile_ids.isdisjoint({e for recs in shared.values() for e, _, _ in recs})

    # Valid events: decided exactly as the plans say, shared exactly where they allow.
    expected = expected_from_raw(settings, stack.planset(), valid_ids)
    assert expected.event_ids == valid_ids
    decisions = {(r["event_id"], r["recipient"]): r for r in audit if r["event_id"] in valid_ids}
    differ = {
        k: (r["outcome"], r["reason"], expected.reasons.get(k))
        for k, r in decisions.items()
        if expected.decisions.get(k) != r["outcome"]
    }
    assert not differ, f"worker decided differently from the plans (outcome, reason, plan's reason): {differ}"
    assert decisions.keys() == expected.decisions.keys()
    assert {t: {e for e, _, _ in recs} for t, recs in shared.items() if recs} == expected.shared

    # A wrong NHS check digit is flagged and withheld (or the event denied), never tokenised.
    flagged = [
        r for k, r in decisions.items() if k[0] in broken_nhs and "nhs_number" in r["invalid_identifiers"]
    ]
    assert flagged, "no decision flagged an invalid NHS number"
    for r in flagged:
        assert r["outcome"] in ("shared", "denied")
        if r["outcome"] == "shared":
            assert any(p.endswith("nhs_number") for p in r["withheld"]), r
            assert not any(p.endswith("nhs_number") for p in r["released"]), r

    # The metric agrees with the topic, and the worker never restarted.
    metrics = scrape(worker)
    assert metric_sum(metrics, "sharingbus_dead_letters_total", stage="enforcer") == len(bads)
    assert worker.proc.poll() is None and worker.proc.pid == pid
    assert crash_lines(worker.log()) == []
    assert worker.log().count("[^Worker]: Starting...") == 1
    print(f"\npoison: {dict(kinds)}; {len(broken_nhs)} bad NHS numbers, {len(odd_unicode)} Unicode events")


def test_oversized_fields_do_not_cost_the_rest_of_the_batch(stack: Stack) -> None:
    """1 MB in a field the broker accepts: the event is decided or dead-lettered, its batch goes on.

    The broker (Tansu here; Apache Kafka up to `message.max.bytes`, 1 MB by default) takes the
    record, so the enforcer must cope: whatever it decides for the big event, the valid events
    around it must be decided and the agent must not crash (a crashed Faust agent acks its batch).
    """
    settings = stack.settings
    catalogue = stack.catalogue
    worker = stack.start_worker(wait=False)  # it starts while the test builds its records
    events = list(Simulation(seed=304, people=200).events(300))
    material = build_material(settings, catalogue, events)
    crimes = [f for f in material.frames if f.record.get("crime_category") == "VIOLENCE_AND_SEXUAL_OFFENCES"]
    assert crimes
    big: dict[bytes, Bad] = {}
    kept = copy.deepcopy(crimes[0].record)  # offence_description is a field the VRU receives
    kept["envelope"]["event_id"] = str(uuid.uuid4())
    kept["offence_description"] = "x" * (1024 * 1024)
    big[b"big-kept-field"] = Bad(
        "big", crimes[0].topic, material.frame("police.crime_recorded", kept), ANY_REJECTION
    )
    dropped = copy.deepcopy(crimes[0].record)  # free text every agreement drops
    dropped["envelope"]["event_id"] = str(uuid.uuid4())
    dropped["location"]["description"] = "y" * (1024 * 1024)
    big[b"big-dropped-field"] = Bad(
        "big", crimes[0].topic, material.frame("police.crime_recorded", dropped), ANY_REJECTION
    )
    garbage = b"\x07" + b"z" * (1024 * 1024)
    big[b"big-garbage"] = Bad("big", crimes[0].topic, garbage, DECODE)

    worker.wait_ready()
    pid = worker.proc.pid
    valid_ids = {f.record["envelope"]["event_id"] for f in material.frames}
    half = len(material.frames) // 2
    records: list[tuple[str, bytes | None, bytes | None]] = [
        (f.topic, f.record["envelope"]["event_id"].encode(), f.value) for f in material.frames[:half]
    ]
    records += [(b.topic, key, b.value) for key, b in big.items()]
    records += [(f.topic, f.record["envelope"]["event_id"].encode(), f.value) for f in material.frames[half:]]
    produce_all(raw_producer(settings), records)

    handled_by = {
        b"big-kept-field": kept["envelope"]["event_id"],
        b"big-dropped-field": dropped["envelope"]["event_id"],
        b"big-garbage": None,
    }

    def settled() -> tuple[set[str], dict[bytes, list[tuple[str | None, bytes | None]]]] | None:
        decided = {r["event_id"] for r in audit_records(settings)}
        dlq = _dlq_by_key(settings)
        done = valid_ids <= decided and all(k in dlq or e in decided for k, e in handled_by.items())
        return (decided, dlq) if done else None

    try:
        decided, dlq = wait_until(settled, 60, "valid events and oversized records to be handled", 0.5)
    except AssertionError as exc:
        missing = len(valid_ids - {r["event_id"] for r in audit_records(settings)})
        raise AssertionError(
            f"{exc}: {missing} of {len(valid_ids)} valid events never decided; "
            f"crashes: {crash_lines(worker.log())[:2]}; errors: {tracebacks(worker.log())[-2:]}"
        ) from None
    crashes = crash_lines(worker.log())
    assert crashes == []
    assert valid_ids <= decided
    assert dlq[b"big-garbage"][0][0] == dl.DECODE_ERROR
    assert worker.proc.poll() is None and worker.proc.pid == pid


def test_a_nul_character_in_a_name_does_not_stall_the_stream(stack: Stack) -> None:
    """A valid event whose name holds U+0000 (legal in Avro strings; PostgreSQL text refuses it).

    The enforcer fills the re-identification vault from raw subjects; a value PostgreSQL cannot
    store must not block every later event: all events published after it are decided promptly.
    """
    settings = stack.settings
    worker = stack.start_worker(wait=False)  # it starts while the test builds its records
    events = list(Simulation(seed=305, people=200).events(200))
    material = build_material(settings, stack.catalogue, events)
    with_subject = [f for f in material.frames if next(subjects(f.record), None) is not None]
    poisoned = with_subject[len(with_subject) // 3]
    next(subjects(poisoned.record))["given_name"] = "Ja\x00ne"
    poisoned.value = material.frame(poisoned.event_type, poisoned.record)
    worker.wait_ready()
    produce_all(
        raw_producer(settings),
        [(f.topic, f.record["envelope"]["event_id"].encode(), f.value) for f in material.frames],
    )
    ids = {f.record["envelope"]["event_id"] for f in material.frames}

    def undecided() -> set[str]:
        return ids - {r["event_id"] for r in audit_records(settings)}

    try:
        wait_until(lambda: not undecided(), 45, "every event to be decided", 0.5)
    except AssertionError as exc:
        stalls = [line for line in worker.log().splitlines() if "failed" in line and "WARNING" in line]
        raise AssertionError(f"{exc}: {len(undecided())} of {len(ids)} undecided; {stalls[-1:]}") from None
    assert worker.proc.poll() is None
    assert crash_lines(worker.log()) == []
