"""Governed combination end to end: a real worker on the shipped agreements, real broker and PostgreSQL.

One child is seen by five partners. Only what an agreement lets into the VRU's person view may
reach its profile (a violent crime, the social-care exploitation factors), under the VRU's own
token and with times by day; a denied crime, the mental-health factor, housing, youth justice and
the school's exclusion (shared with the YJS, which has no view) reach no profile at all, and every
combination is in the ledger.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams import topics
from streams.agreements.tree import event_tree
from streams.avro.catalogue import load_catalogue
from streams.kafka.reader import read_to_end
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.keys import KeyRing
from streams.publish.publisher import Publisher
from streams.registry.client import registry_client
from streams.settings import ROOT, Settings
from tests.support.stack import reader_config, wait_until
from tests.unit.agreements.conftest import _record, set_path
from tests.workers import WorkerProcess, discard, start_worker

T = TypeVar("T")
OCCURRED = datetime(2026, 11, 14, 23, 47, 12, tzinfo=UTC)
CHILD = {
    "nhs_number": None,
    "upn": None,
    "pnc_id": None,
    "local_id": None,
    "given_name": "Kai",
    "family_name": "Okonkwo",
    "date_of_birth": "2010-05-17",
    "postcode": "RG1 3XY",
}
EVENTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "thames_valley_police",
        "police.crime_recorded",
        {
            "crime_reference": "CR-1",  # the record key: two crimes, two events
            "crime_category": "BURGLARY",
            "people[].role": "SUSPECT",
            "knife_or_sharp_instrument": False,
            "firearm": False,
        },
    ),
    (
        "thames_valley_police",
        "police.crime_recorded",
        {
            "crime_reference": "CR-2",
            "crime_category": "ROBBERY",
            "people[].role": "SUSPECT",
            "knife_or_sharp_instrument": False,
            "firearm": False,
        },
    ),
    ("reading_childrens_services", "social_care.assessment_factors", {"factors": ["MENTAL_HEALTH", "GANGS"]}),
    ("reading_housing", "housing.homelessness_case", {}),
    ("reading_yjs", "youth_justice.outcome", {}),
    ("reading_schools", "education.exclusion", {"exclusion_type": "PERMANENT"}),
]
ALLOWED = {"involvement_in_violence", "gang_association"}


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 120.0, last: Any = None) -> T:
    """`wait_until`, naming what `check` last saw (`last`, filled by the check) on a timeout."""
    try:
        return wait_until(check, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {last}" if last else str(exc)) from None


@pytest.fixture
def stack(stack_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[Settings, WorkerProcess]]:
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    settings = stack_factory(agreements_dir=agreements)
    worker = start_worker(settings, tmp_path / "logs")
    try:
        yield settings, worker
    finally:
        discard(worker)


def _publish(settings: Settings) -> list[str]:
    catalogue = load_catalogue(settings.schemas_dir)
    ids = []
    for partner, event_type, overrides in EVENTS:
        event = _record(event_tree(catalogue.event_type(event_type)), nulls=False)
        event["envelope"] = {"occurred_at": OCCURRED}
        for path, value in overrides.items():
            set_path(event, path, value)
        subject = dict(CHILD, gender=(event.get("subject") or {}).get("gender"))
        if "people" in event:
            set_path(event, "people[].subject", subject)
        if "subject" in event:
            event["subject"] = subject
        if event.get("location"):
            event["location"]["postcode"] = "RG1 2AB"
        with Publisher(settings, partner) as pub:
            ids.append(str(pub.publish(event_type, event).record["envelope"]["event_id"]))
    return ids


def _person(settings: Settings, event_id: str) -> str | None:
    with psycopg.connect(settings.postgres_dsn) as conn:
        if conn.execute("SELECT to_regclass('vault_links')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT person_token FROM vault_links WHERE event_id = %s", (event_id,)).fetchone()
    return str(row[0]) if row else None


def _combinations(settings: Settings, ids: list[str]) -> dict[tuple[str, str], tuple[str, list[str]]]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        if conn.execute("SELECT to_regclass('audit_decisions')").fetchone() == (None,):
            return {}
        rows = conn.execute(
            "SELECT event_id, recipient, outcome, record FROM audit_decisions "
            "WHERE event_id = ANY(%s) AND recipient LIKE 'person_profile:%%'",
            (ids,),
        ).fetchall()
    return {(str(e), str(r)): (str(o), list(rec["released"])) for e, r, o, rec in rows}


def test_only_agreed_facts_combine_under_the_recipients_own_token(
    stack: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = stack
    ids = _publish(settings)
    burglary, robbery, assessment, housing, youth, exclusion = ids
    person = wait_for(lambda: _person(settings, robbery), "the robbery to be linked")
    keyring = KeyRing.load(settings.keyring_path)
    vru = ViewTokens(keyring, settings.linkage_key_id or keyring.ids[0]).token("vru_analysts", person)

    last: list[Any] = [None]

    def vru_profile() -> dict[str, Any] | None:
        resp = httpx.get(f"{worker.url}/api/persons/{vru}", headers=worker.analyst, timeout=5)
        body: dict[str, Any] | None = resp.json() if resp.status_code == 200 else None
        last[0] = body
        return body if body and set(body["factors"]) == ALLOWED else None

    profile = wait_for(vru_profile, "the VRU's profile of both agreed sources", last=last)
    for stats in profile["factors"].values():
        for seen in ("first_seen", "last_seen"):
            assert stats[seen] == "2026-11-14T00:00:00+00:00", stats  # by day, never 23:47:12
    assert (
        httpx.get(f"{worker.url}/api/persons/{person}", headers=worker.analyst, timeout=5).status_code == 404
    )

    # The ledger holds every combination decision, allowed or not.
    expected = {
        (burglary, "person_profile:vru_analysts"): ("denied", []),
        (robbery, "person_profile:vru_analysts"): ("shared", ["involvement_in_violence"]),
        (assessment, "person_profile:vru_analysts"): ("shared", ["gang_association"]),
        (housing, "person_profile:*"): ("denied", []),
        (youth, "person_profile:*"): ("denied", []),
        (exclusion, "person_profile:*"): ("denied", []),
    }
    seen: list[Any] = [None]

    def combinations() -> bool:
        seen[0] = _combinations(settings, ids)
        return seen[0] == expected

    wait_for(combinations, "combination records in PostgreSQL", last=seen)

    # Published profiles: only the VRU's tokens, only agreed factors, times by day.
    deserialise = AvroDeserializer(registry_client(settings))
    ctx = SerializationContext(topics.VIEWS_PERSON_PROFILE, MessageField.VALUE)

    def published() -> list[tuple[bytes, dict[str, Any]]] | None:
        records = [
            (m.key(), deserialise(m.value(), ctx))
            for m in read_to_end(reader_config(settings), topics.VIEWS_PERSON_PROFILE)
            if m.value()
        ]
        return records if any(k == vru.encode() for k, _ in records) else None

    records = wait_for(published, "the VRU's profile on views.person_profile")
    assert {k for k, _ in records} == {vru.encode()}
    value = records[-1][1]  # a compacted topic: the last record of the key is the profile
    assert {f["factor"] for f in value["factors"]} == ALLOWED
    for f in value["factors"]:
        assert (f["first_seen"].hour, f["last_seen"].minute, f["last_seen"].second) == (0, 0, 0)
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute("SELECT DISTINCT person_token, factor FROM person_factors").fetchall()
    assert {(str(t), str(f)) for t, f in rows} == {(vru, f) for f in ALLOWED}
