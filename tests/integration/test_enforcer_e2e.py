"""The enforcer end to end: real worker process, broker, registry and PostgreSQL.

Each recipient's consumer sees what its agreement allows: a few events per agreement, each with
its expected output written out by hand from the agreement (`agreements/*.yaml`), never computed
by the compiler under test. Nothing identifying leaks, denials and dead letters are audited, and an
edited agreement takes effect without a restart.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from fastavro import schemaless_writer

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache
from streams.publish.publisher import Publisher
from streams.publish.simulate import Simulation
from streams.registry.client import registry_client
from streams.settings import ROOT, Settings
from tests.support.stack import (
    audit_records,
    decoded,
    header,
    metric_sum,
    publish,
    query,
    read_topic,
    scrape,
    topic_names,
    wait_decided,
    wait_until,
)
from tests.workers import WorkerProcess, discard, start_worker


def _ids(settings: Settings, events: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    return [p.event_id for p in publish(settings, events)]


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


# --------------------------------------------------------------------------- hand-written cases

OCCURRED = datetime(2026, 3, 14, 21, 30, tzinfo=UTC)  # GMT in March: the same day in London
RECORDED = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
TOKEN = re.compile(r"^[a-z0-9]+\.[a-z2-7]{26}$")  # key id, then a keyed base32 digest


class Token(str):
    """A pseudonym: every field marked with the same name holds one token, other names another."""


@dataclass(frozen=True)
class Case:
    partner: str
    event_type: str
    event: dict[str, Any]
    outcomes: dict[str, str]  # recipient with a plan for this event -> outcome
    shared: dict[str, dict[str, Any]]  # recipient -> the record it must receive (envelope aside)


def _envelope() -> dict[str, Any]:
    return {"occurred_at": OCCURRED, "recorded_at": RECORDED}


VICTIM = {"family_name": "Begum", "given_name": "Alfie", "gender": "MALE"}
SUSPECT = {"family_name": "Lloyd-Davies", "given_name": "Tomasz", "gender": "MALE"}

CASES = [
    # ed-istv-csp: an area-tier recipient; free text and the hospital's own fields are dropped,
    # the postcode becomes its district and the assault time its month.
    Case(
        "royal_berkshire_ed",
        "health.ed_assault_attendance",
        {
            "envelope": _envelope(),
            "age_band": "AGE_18_24",
            "arrival_at": OCCURRED,
            "assault_at": datetime(2026, 3, 14, 20, 55, tzinfo=UTC),
            "assault_location_type": "STREET",
            "assault_method": "KNIFE_OR_SHARP_OBJECT",
            "disposal": "ADMITTED",
            "gender": "MALE",
            "site_code": "RHW01",
            "location": {
                "description": "Outside the Oracle car park",
                "latitude": 51.45401,
                "longitude": -0.96993,
                "lsoa_code": "E01016010",
                "postcode": "RG1 2AG",
            },
        },
        {"reading_csp": "shared"},
        {
            "reading_csp": {
                "age_band": "AGE_18_24",
                "assault_at": "2026-03",
                "assault_location_type": "STREET",
                "assault_method": "KNIFE_OR_SHARP_OBJECT",
                "gender": "MALE",
                "location": {"lsoa_code": "E01016010", "postcode": "RG1"},
            }
        },
    ),
    # education-yjs: permanent exclusions and suspensions only; the UPN pseudonymised, the date of
    # birth a band of [10, 12, 14, 16, 18] (15 years old: 14-15), name and postcode never sent.
    Case(
        "reading_schools",
        "education.exclusion",
        {
            "envelope": _envelope(),
            "exclusion_type": "PERMANENT",
            "reason": "OFFENSIVE_WEAPON",
            "school_urn": "109058",
            "sessions": 0,
            "start_date": date(2026, 3, 12),
            "year_group": 10,
            "subject": {
                "date_of_birth": date(2011, 2, 3),
                "family_name": "James",
                "given_name": "Freya",
                "gender": "FEMALE",
                "postcode": "RG1 7ZG",
                "upn": "X870250114813",
            },
        },
        {"reading_yjs_team": "shared"},
        {
            "reading_yjs_team": {
                "exclusion_type": "PERMANENT",
                "reason": "OFFENSIVE_WEAPON",
                "school_urn": "109058",
                "sessions": 0,
                "start_date": date(2026, 3, 12),
                "year_group": 10,
                "subject": {"date_of_birth": "14-15", "gender": "FEMALE", "upn": Token("upn:yjs")},
            }
        },
    ),
    Case(  # a lunchtime exclusion is not in the agreement's `where`
        "reading_schools",
        "education.exclusion",
        {
            "envelope": _envelope(),
            "exclusion_type": "LUNCHTIME",
            "reason": "DAMAGE",
            "school_urn": "109058",
            "sessions": 1,
            "start_date": date(2026, 3, 13),
            "year_group": 10,
            "subject": {
                "date_of_birth": date(2011, 2, 3),
                "family_name": "James",
                "given_name": "Freya",
                "gender": "FEMALE",
                "upn": "X870250114813",
            },
        },
        {"reading_yjs_team": "denied"},
        {},
    ),
    # police-vru-analysts: robbery is in scope; every person's identifiers are tokens in the VRU's
    # own domain, dates of birth bands of [10, 14, 18, 25, 35], coordinates rounded to 3 places,
    # the crime reference, offence description and names dropped.
    Case(
        "thames_valley_police",
        "police.crime_recorded",
        {
            "envelope": _envelope(),
            "crime_category": "ROBBERY",
            "crime_reference": "43/26/100001",
            "domestic_abuse": False,
            "firearm": False,
            "knife_or_sharp_instrument": True,
            "offence_code": "34/1",
            "offence_description": "Robbery of personal property",
            "outcome": "UNDER_INVESTIGATION",
            "location": {
                "description": "Alleyway behind the shops",
                "latitude": 51.45678,
                "longitude": -0.97123,
                "lsoa_code": "E01016044",
                "postcode": "RG1 7QE",
            },
            "people": [
                {
                    "role": "VICTIM",
                    "subject": {
                        **VICTIM,
                        "date_of_birth": date(2010, 6, 1),
                        "postcode": "RG30 4TR",
                        "nhs_number": "9434765919",
                    },
                },
                {
                    "role": "SUSPECT",
                    "subject": {
                        **SUSPECT,
                        "date_of_birth": date(1996, 5, 5),
                        "postcode": "HP21 7WP",
                        "pnc_id": "22/2865396V",
                    },
                },
            ],
        },
        {"vru_analysts": "shared"},
        {
            "vru_analysts": {
                "crime_category": "ROBBERY",
                "domestic_abuse": False,
                "firearm": False,
                "knife_or_sharp_instrument": True,
                "offence_code": "34/1",
                "outcome": "UNDER_INVESTIGATION",
                "location": {
                    "latitude": 51.457,
                    "longitude": -0.971,
                    "lsoa_code": "E01016044",
                    "postcode": "RG1",
                },
                "subject": None,
                "people": [
                    {
                        "role": "VICTIM",
                        "subject": {
                            "date_of_birth": "14-17",
                            "gender": "MALE",
                            "nhs_number": Token("nhs:vru"),
                            "pnc_id": None,
                            "postcode": "RG30",
                        },
                    },
                    {
                        "role": "SUSPECT",
                        "subject": {
                            "date_of_birth": "25-34",
                            "gender": "MALE",
                            "nhs_number": None,
                            "pnc_id": Token("pnc:vru"),
                            "postcode": "HP21",
                        },
                    },
                ],
            }
        },
    ),
    Case(  # a burglary without a knife or firearm is out of scope
        "thames_valley_police",
        "police.crime_recorded",
        {
            "envelope": _envelope(),
            "crime_category": "BURGLARY",
            "crime_reference": "43/26/100002",
            "domestic_abuse": False,
            "firearm": False,
            "knife_or_sharp_instrument": False,
            "offence_code": "28/1",
            "offence_description": "Burglary in a dwelling",
            "outcome": "UNDER_INVESTIGATION",
            "location": {"latitude": 51.45678, "longitude": -0.97123, "lsoa_code": "E01016044"},
            "people": [],
        },
        {"vru_analysts": "denied"},
        {},
    ),
    # probation-police: risk of serious harm medium or above; the same PNC id as the robbery
    # suspect gets another token, in the agreement's purpose:policing domain.
    Case(
        "probation_thames_valley",
        "probation.supervision_event",
        {
            "envelope": _envelope(),
            "event_date": date(2026, 3, 14),
            "index_offence_category": "Robbery",
            "kind": "RELEASED_ON_LICENCE",
            "mappa_category": "CATEGORY_2",
            "mappa_level": "LEVEL_2",
            "rosh_level": "HIGH",
            "subject": {
                **SUSPECT,
                "date_of_birth": date(1996, 5, 5),
                "local_id": "X139694",
                "pnc_id": "22/2865396V",
                "postcode": "HP21 7WP",
            },
        },
        {"tvp_offender_management": "shared"},
        {
            "tvp_offender_management": {
                "event_date": date(2026, 3, 14),
                "index_offence_category": "Robbery",
                "kind": "RELEASED_ON_LICENCE",
                "mappa_category": "CATEGORY_2",
                "mappa_level": "LEVEL_2",
                "rosh_level": "HIGH",
                "subject": {
                    "date_of_birth": "25-34",
                    "gender": "MALE",
                    "pnc_id": Token("pnc:policing"),
                    "postcode": "HP21",
                },
            }
        },
    ),
    Case(  # low risk of serious harm is out of scope
        "probation_thames_valley",
        "probation.supervision_event",
        {
            "envelope": _envelope(),
            "event_date": date(2026, 3, 14),
            "index_offence_category": "Theft",
            "kind": "SUPERVISION_ENDED",
            "rosh_level": "LOW",
            "subject": {
                "family_name": "OConnor",
                "given_name": "Jacob",
                "gender": "MALE",
                "date_of_birth": date(1980, 1, 1),
                "local_id": "X139695",
                "pnc_id": "24/6574512Y",
                "postcode": "RG31 6DA",
            },
        },
        {"tvp_offender_management": "denied"},
        {},
    ),
    # social-care-vru: no `where`; the NHS number of the robbery victim gets the same VRU token
    # (both agreements pseudonymise in the recipient's domain, so the VRU can link its feeds);
    # the assessment date becomes its month.
    Case(
        "reading_childrens_services",
        "social_care.assessment_factors",
        {
            "envelope": _envelope(),
            "assessment_date": date(2026, 3, 10),
            "assessment_id": "AS/26/000001",
            "factors": ["GANGS", "GOING_MISSING"],
            "outcome": "CHILD_PROTECTION_ENQUIRY",
            "subject": {
                **VICTIM,
                "date_of_birth": date(2010, 6, 1),
                "local_id": "CS568205",
                "nhs_number": "9434765919",
                "postcode": "RG30 4TR",
                "upn": "B870204423956",
            },
        },
        {"vru_analysts": "shared"},
        {
            "vru_analysts": {
                "assessment_date": "2026-03",
                "factors": ["GANGS", "GOING_MISSING"],
                "outcome": "CHILD_PROTECTION_ENQUIRY",
                "subject": {
                    "date_of_birth": "14-17",
                    "gender": "MALE",
                    "local_id": Token("local:vru"),
                    "nhs_number": Token("nhs:vru"),
                    "postcode": "RG30",
                    "upn": Token("upn:vru"),
                },
            }
        },
    ),
    Case(  # on_invalid_identifier: deny_event (9434765910 fails the NHS check digit)
        "reading_childrens_services",
        "social_care.assessment_factors",
        {
            "envelope": _envelope(),
            "assessment_date": date(2026, 3, 10),
            "assessment_id": "AS/26/000002",
            "factors": ["NEGLECT"],
            "outcome": "EARLY_HELP",
            "subject": {
                "family_name": "Bennett",
                "given_name": "Amy",
                "gender": "FEMALE",
                "date_of_birth": date(2012, 2, 3),
                "local_id": "CS568206",
                "nhs_number": "9434765910",
            },
        },
        {"vru_analysts": "denied"},
        {},
    ),
]

IDENTIFIERS = ["X870250114813", "B870204423956", "9434765919", "22/2865396V", "CS568205", "X139694"]


def _envelope_shared(partner: str, event_type: str, event_id: str, tier: str) -> dict[str, Any]:
    """Envelope times are generalised like the record: the day (individual), the month (area)."""
    day, month = OCCURRED.date().isoformat(), OCCURRED.strftime("%Y-%m")
    recorded_day = RECORDED.date().isoformat()
    return {
        "event_id": event_id,
        "event_type": event_type,
        "source_partner": partner,
        "occurred_at": day if tier == "individual" else month,
        "recorded_at": recorded_day if tier == "individual" else RECORDED.strftime("%Y-%m"),
        "schema_version": 1,
    }


def _match(want: Any, got: Any, where: str, tokens: dict[str, set[str]]) -> None:
    """`got` equals `want`, where each `Token` of `want` matches a pseudonym recorded in `tokens`."""
    if isinstance(want, Token):
        assert isinstance(got, str) and TOKEN.match(got), f"{where}: {got!r} is not a pseudonym"
        tokens.setdefault(want, set()).add(got)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: {got!r}"
        for key, value in want.items():
            _match(value, got[key], f"{where}.{key}", tokens)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r}"
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            _match(w, g, f"{where}[{i}]", tokens)
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def test_each_recipient_receives_what_its_agreement_says_for_hand_written_events(
    stack: tuple[Settings, WorkerProcess],
) -> None:
    settings, _ = stack
    tiers = {"reading_csp": "area"}  # every other recipient here is individual tier (recipients.yaml)
    sent = publish(settings, [(c.partner, c.event_type, c.event) for c in CASES])
    ids = {p.event_id for p in sent}
    audit = [r for r in wait_decided(settings, ids) if r["event_id"] in ids]

    for case, published in zip(CASES, sent, strict=True):
        records = [r for r in audit if r["event_id"] == published.event_id]
        planned = {r["recipient"]: r["outcome"] for r in records if r["recipient"] != "*"}
        assert planned == case.outcomes, (case.event_type, records)
        assert [r["outcome"] for r in records if r["recipient"] == "*"] == ["denied"]

    tokens: dict[str, set[str]] = {}
    for case, published in zip(CASES, sent, strict=True):
        for recipient in case.outcomes:
            topic = topics.shared(recipient, case.event_type)
            got = [r for _, r in decoded(settings, topic) if r["envelope"]["event_id"] == published.event_id]
            if recipient not in case.shared:
                assert got == [], f"{topic} carries a denied event"
                continue
            assert len(got) == 1, f"{topic}: {len(got)} copies"
            want = {
                **case.shared[recipient],
                "envelope": _envelope_shared(
                    case.partner, case.event_type, published.event_id, tiers.get(recipient, "individual")
                ),
            }
            _match(want, got[0], topic, tokens)
    assert all(len(values) == 1 for values in tokens.values()), tokens  # one token per marker
    distinct = [next(iter(values)) for values in tokens.values()]
    assert len(set(distinct)) == len(distinct), tokens  # different markers, different tokens
    assert tokens.keys() == {"upn:yjs", "nhs:vru", "pnc:vru", "pnc:policing", "local:vru", "upn:vru"}
    for topic in topic_names(settings, "shared."):
        for msg in read_topic(settings, topic):
            assert not any(i.encode() in (msg.value() or b"") for i in IDENTIFIERS), topic


def test_nothing_identifying_reaches_any_shared_topic(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = stack
    sim = Simulation(seed=12, people=200)
    events = list(sim.events(300))
    wait_decided(settings, set(_ids(settings, events)))
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
    shared_topics = topic_names(settings, "shared.")
    assert shared_topics
    for topic in shared_topics:
        for msg, record in decoded(settings, topic):
            text = json.dumps(record, default=str)
            leaked = [s for s in secrets if s in text or s.encode() in (msg.value() or b"")]
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
    schema_id = SchemaCache(registry_client(settings)).id_for(
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
    dead = wait_until(
        lambda: (lambda msgs: msgs if len(msgs) >= len(hostile) else None)(
            read_topic(settings, topics.dlq("enforcer"))
        ),
        60,
        f"{len(hostile)} dead letters",
    )
    assert sorted(m.key() or b"" for m in dead) == sorted(hostile)  # each once
    for msg in dead:
        topic, value, reason = hostile[msg.key() or b""]
        assert header(msg, "sharingbus.dlq.reason") == reason, msg.key()
        assert msg.value() == value  # the original bytes, untouched
    # Nothing hostile was shared, the good event was, and the worker never restarted.
    wait_decided(settings, {good_id})
    assert worker.proc.poll() is None
    assert "Crashed reason" not in worker.log()


def test_event_ids_are_passed_on_in_canonical_form(stack: tuple[Settings, WorkerProcess]) -> None:
    """An upper-case spelling of a valid UUID is decided under its canonical (lower-case) form."""
    settings, _ = stack
    sim = Simulation(seed=17, people=100)
    stop_search = next(
        e
        for p, t, e in sim.events(2000)
        if t == "police.stop_search" and e["object_of_search"] in ("OFFENSIVE_WEAPONS", "FIREARMS")
    )  # in the VRU agreement's scope, so the event is shared under its id
    topic = topics.raw("thames_valley_police", "police.stop_search")
    et = load_catalogue(settings.schemas_dir).event_type("police.stop_search")
    with Publisher(settings, "thames_valley_police") as pub:
        record = pub.prepare("police.stop_search", stop_search)
    canonical = str(uuid.uuid4())
    record["envelope"] = dict(record["envelope"], event_id=canonical.upper())
    schema_id = SchemaCache(registry_client(settings)).id_for(topics.value_subject(topic), et.schema)
    buf = io.BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(buf, et.parsed, record)
    producer = Producer(settings.kafka_config())
    producer.produce(topic, key=b"upper", value=buf.getvalue())
    producer.flush()
    decisions = [r for r in wait_decided(settings, {canonical}) if r["event_id"] == canonical]
    assert decisions and not [r for r in audit_records(settings) if r["event_id"] == canonical.upper()]
    shared = {r["output_topic"] for r in decisions if r["outcome"] == "shared"}
    assert shared, "a weapons stop and search is shared with the VRU"
    for out_topic in shared:
        events = [e for _, e in decoded(settings, out_topic) if str(e["envelope"]["event_id"]) == canonical]
        assert len(events) == 1, out_topic


def test_audit_reaches_postgresql_and_the_chain_verifies(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = stack
    sim = Simulation(seed=15, people=100)
    events = list(sim.events(150))
    published = _ids(settings, events)
    ids = set(published)
    owner = {event_id: partner for event_id, (partner, _, _) in zip(published, events, strict=True)}
    wait_decided(settings, ids)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")} | settings.to_env()
    verify = subprocess.run(
        [sys.executable, "-m", "sharebus.main", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    wait_until(
        lambda: (
            ids <= {str(r[0]) for r in query(settings.postgres_dsn, "SELECT event_id FROM audit_decisions")}
        ),
        60,
        "every decision in PostgreSQL",
    )
    # The owners' own identifiers went to the re-identification vault (and nowhere else).
    rows = query(settings.postgres_dsn, "SELECT DISTINCT event_id::text, partner FROM vault_identities")
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
    ids = set(_ids(settings, list(sim.events(200))))
    wait_decided(settings, ids)
    ring = json.loads(settings.keyring_path.read_text())
    secrets = [entry["secret"] for entry in ring["keys"].values()]
    needles = [s.encode() for s in secrets] + [base64.b64decode(s) for s in secrets]
    assert needles and all(len(n) >= 16 for n in needles)
    scanned = 0
    for topic in topic_names(settings):
        for msg in read_topic(settings, topic):
            headers: Any = msg.headers() or []
            blob = (msg.key() or b"") + (msg.value() or b"") + b"".join(v or b"" for _, v in headers)
            assert not any(n in blob for n in needles), topic
            scanned += 1
    assert scanned > len(ids)
    log = worker.log().encode()
    assert log and not any(n in log for n in needles)


def test_consumer_lag_is_exported_per_input_partition(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = stack
    wait_decided(settings, set(_ids(settings, list(Simulation(seed=17, people=50).events(100)))))
    lags = {
        dict(labels)["topic"]: v
        for (name, labels), v in scrape(worker).items()
        if name == "sharingbus_consumer_lag"
    }
    assert lags and all(topic.startswith("raw.") for topic in lags), lags
    assert all(v >= 0 for v in lags.values())


def test_an_edited_agreement_takes_effect_without_a_restart(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = stack
    sim = Simulation(seed=14, people=150)
    exclusions = [e for p, t, e in sim.events(2000) if t == "education.exclusion" and p == "reading_schools"]
    exclusions = [e for e in exclusions if e.get("exclusion_type") in ("PERMANENT", "SUSPENSION")][:10]
    assert len(exclusions) >= 4
    first, second = exclusions[:2], exclusions[2:]
    before = set(_ids(settings, [("reading_schools", "education.exclusion", e) for e in first]))
    wait_decided(settings, before)
    reloads = metric_sum(scrape(worker), "sharingbus_plan_reloads_total", result="success")
    path = settings.agreements_dir / "education-yjs.yaml"
    text = path.read_text()
    assert "      reason: keep\n" in text
    path.write_text(text.replace("      reason: keep\n", "", 1).replace('version: "1.0"', 'version: "1.1"'))
    wait_until(
        lambda: metric_sum(scrape(worker), "sharingbus_plan_reloads_total", result="success") > reloads,
        30,
        "the worker to reload the edited agreement",
    )
    after = set(_ids(settings, [("reading_schools", "education.exclusion", e) for e in second]))
    audit = wait_decided(settings, after)
    topic = topics.shared("reading_yjs_team", "education.exclusion")
    by_id = {str(r["envelope"]["event_id"]): r for _, r in decoded(settings, topic)}
    assert before | after <= by_id.keys(), "the edited agreement still shares exclusions"
    assert all("reason" in by_id[i] for i in before)
    assert not any("reason" in by_id[i] for i in after)
    versions = {
        r["agreement_version"]
        for r in audit
        if r["event_id"] in after and r["recipient"] == "reading_yjs_team"
    }
    assert versions == {"1.1"}
    assert worker.proc.poll() is None
