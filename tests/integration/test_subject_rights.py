"""Data subject rights end to end: real worker process, broker, registry and PostgreSQL.

School exclusions from `reading_schools` are shared with three recipients (the YJS and the VRU in
their own pseudonym domains, the community safety partnership with no identifier at all); the
police also hold a stop and search about one of the children. Then the controllers ask:
- a partner that does not own the events asks to erase them: refused and audited, nothing sent;
- erasure of one child (by identifier) and of another (by event ids): every recipient gets a
  tombstone keyed like the original, the views and their PostgreSQL rows stop counting the events,
  the vault can no longer re-identify them, the police's own record of the child is untouched,
  and subject access lists every sharing, and the request that retracted it;
- rectification: each recipient receives exactly what its current plan makes of the corrected
  event (its own tokens), a recipient whose plan denies the corrected event gets a retraction,
  and a second rectification keeps the first one's corrections;
- restriction: the restricted child's new events are not shared (audited as restricted) while
  other children's are, until the restriction is lifted;
- retention: nothing is purged before the controller's longest agreement runs out; then the
  views, their PostgreSQL rows and the vault forget every event, once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from streams import topics
from streams.agreements import load_agreements
from streams.avro.catalogue import load_catalogue
from streams.avro.serde import SchemaCache, decode
from streams.enforce.audit_store import AuditStore
from streams.kafka.producer import DeliveringProducer
from streams.kafka.reader import read_to_end
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.identifiers import upn_check_letter
from streams.privacy.keys import KeyRing
from streams.privacy.vault_access import VaultAccess
from streams.publish.publisher import Publisher
from streams.registry.client import registry_client
from streams.rights.model import HEADER_CORRECTS, HEADER_REQUEST_ID, HEADER_RETRACTS
from streams.rights.resolve import NOT_OWNER
from streams.rights.retention import purge
from streams.settings import ROOT, Settings
from tests.support.reid import Identities, as_caller, owners_of
from tests.support.stack import audit_records, reader_config, wait_until
from tests.workers import WorkerProcess, discard, start_worker

SCHOOLS, POLICE = "reading_schools", "thames_valley_police"
EXCLUSION, STOP_SEARCH, REQUEST = "education.exclusion", "police.stop_search", "bus.subject_request"
RECIPIENTS = ("reading_csp", "reading_yjs_team", "vru_analysts")
JUSTIFICATION = "checking what the bus still holds after an erasure request"

EDUCATION_VRU = """
id: education-to-vru-analysts
version: "1.0"
title: School exclusions for the VRU's analysis
owners: [reading_schools]
recipient: vru_analysts
purpose: Understand school exclusion as a risk factor for serious violence.
lawful_basis: [pcsc_2022_s16, cda_1998_s115, uk_gdpr_6_1_e]
review_date: 2028-03-31
retention_days: 730
event_types:
  education.exclusion:
    fields:
      subject.upn: {pseudonymise: {identifier: upn}}
      subject.date_of_birth: {age_band: {bands: [10, 12, 14, 16, 18]}}
      school_urn: keep
      exclusion_type: keep
      start_date: keep
      reason: keep
views:
  person_profile:
    event_types:
      education.exclusion:
"""
EDUCATION_CSP = """
id: education-to-reading-csp
version: "1.0"
title: School exclusions by area for the community safety partnership
owners: [reading_schools]
recipient: reading_csp
purpose: Area problem profiles of exclusions for weapons and assaults.
lawful_basis: [cda_1998_s115, uk_gdpr_6_1_e]
review_date: 2028-03-31
retention_days: 365
event_types:
  education.exclusion:
    fields:
      location.postcode: {postcode_district: {}}
      exclusion_type: keep
      start_date: {truncate_date: {unit: month}}
      reason: keep
"""

T = TypeVar("T")


# --- helpers -------------------------------------------------------------------------------------


def upn(n: int) -> str:
    last12 = f"870{n:09d}"
    return upn_check_letter(last12) + last12


def child(n: int, given: str, family: str) -> dict[str, Any]:
    return {
        "upn": upn(n),
        "given_name": given,
        "family_name": family,
        "date_of_birth": "2011-05-04",
        "postcode": "RG1 3XY",
        "gender": "MALE",
    }


def exclusion(
    subject: dict[str, Any], day: int, reason: str = "PHYSICAL_ASSAULT_AGAINST_PUPIL"
) -> dict[str, Any]:
    return {
        "envelope": {"occurred_at": datetime(2026, 3, day, 9, tzinfo=UTC)},
        "subject": subject,
        "location": {"postcode": "RG1 2AB"},
        "school_urn": "123456",
        "exclusion_type": "SUSPENSION",
        "start_date": date(2026, 3, day),
        "sessions": 4,
        "reason": reason,
        "year_group": 9,
    }


def stop_search(subject: dict[str, Any]) -> dict[str, Any]:
    police_view = {k: subject[k] for k in ("given_name", "family_name", "date_of_birth", "postcode")}
    return {
        "envelope": {"occurred_at": datetime(2026, 3, 20, 22, tzinfo=UTC)},
        "subject": police_view,
        "location": {"postcode": "RG1 1AA"},
        "legislation": "PACE_S1",
        "object_of_search": "OFFENSIVE_WEAPONS",
        "outcome": "ARREST",
        "outcome_linked_to_object": True,
        "weapon_found": True,
        "age_range": "AGE_10_17",
        "gender": "MALE",
    }


_PUBLISHERS: dict[tuple[str, str], Publisher] = {}  # (bootstrap, partner): closed by the `stack` fixture


def publish(settings: Settings, partner: str, event_type: str, event: dict[str, Any]) -> dict[str, Any]:
    """Publish, wait for the broker's acknowledgement and return the record as sent (envelope completed).

    One producer per partner and bus (a new idempotent producer takes most of a second to start)."""
    pub = _PUBLISHERS.get((settings.bootstrap_servers, partner))
    if pub is None:
        pub = _PUBLISHERS[(settings.bootstrap_servers, partner)] = Publisher(settings, partner)
    record = pub.publish(event_type, event).record
    pub.flush()
    return record


def request(settings: Settings, partner: str, kind: str, **fields: Any) -> str:
    body = {"kind": kind, "reason": "the data subject asked", "requester": f"{partner}:dpo.test"} | fields
    return str(
        publish(settings, partner, REQUEST, {"envelope": {"occurred_at": datetime.now(UTC)}} | body)[
            "envelope"
        ]["event_id"]
    )


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """`wait_until` with this module's argument order and default timeout."""
    return wait_until(check, timeout, what)


def audit(settings: Settings) -> list[dict[str, Any]]:
    return audit_records(settings)


def request_steps(settings: Settings, request_id: str) -> list[dict[str, Any]]:
    """Every audit record of a request, once its summary (the last step) is in the ledger."""

    def done() -> list[dict[str, Any]] | None:
        steps = [
            r for r in audit(settings) if r.get("kind") == "request" and r.get("request_id") == request_id
        ]
        return steps if any(s["action"] == "request" for s in steps) else None

    steps = wait_for(done, f"request {request_id} to be handled", 90.0)
    # Audit records and recipients' records go out in one batch: wait for the latter to land too.
    for recipient in RECIPIENTS:
        sent = sum(s["recipient"] == recipient and s["action"] in ("retract", "correct") for s in steps)
        wait_for(
            lambda r=recipient, n=sent: (
                sum(h.get(HEADER_REQUEST_ID) == request_id for _, h, _ in shared_records(settings, r)) == n
                or None
            ),
            f"request {request_id}'s records on {recipient}'s topic",
        )
    return steps


def stored_decisions(settings: Settings, event_ids: list[str], shared: int) -> None:
    """Wait until the ledger's PostgreSQL copy has `shared` sharings of each event."""
    with AuditStore(settings.postgres_dsn) as store:

        def ready() -> bool:
            try:
                counts = [  # recipients' own decisions, not the combinations into views
                    sum(r["outcome"] == "shared" and ":" not in r["recipient"] for r in store.by_event(e))
                    for e in event_ids
                ]
            except Exception:
                return False
            return all(c == shared for c in counts)

        wait_for(ready, "decisions in PostgreSQL")


def person_of(settings: Settings, event_id: str) -> str:
    def find() -> str | None:
        with psycopg.connect(settings.postgres_dsn) as conn:
            if conn.execute("SELECT to_regclass('vault_links')").fetchone() == (None,):
                return None
            row = conn.execute(
                "SELECT person_token FROM vault_links WHERE event_id = %s", (event_id,)
            ).fetchone()
        return str(row[0]) if row else None

    return wait_for(find, f"event {event_id} to be linked")


def shared_records(
    settings: Settings, recipient: str
) -> list[tuple[str, dict[str, str], dict[str, Any] | None]]:
    """(key, headers, decoded value or None for a tombstone) of a recipient's exclusion topic."""
    cache = SchemaCache(registry_client(settings))
    out = []
    for msg in read_to_end(reader_config(settings), topics.shared(recipient, EXCLUSION)):
        headers = {k: v.decode() for k, v in msg.headers() or []}
        value = decode(msg.value(), cache)[1] if msg.value() else None
        out.append((msg.key().decode(), headers, value))
    return out


def raw_event(settings: Settings, event_id: str) -> dict[str, Any]:
    """The original as the bus reads it back (timestamps at Avro's millisecond precision)."""
    cache = SchemaCache(registry_client(settings))
    parsed = load_catalogue(settings.schemas_dir).event_type(EXCLUSION).parsed
    for msg in read_to_end(reader_config(settings), topics.raw(SCHOOLS, EXCLUSION)):
        event = decode(msg.value(), cache, parsed)[1]
        if event["envelope"]["event_id"] == event_id:
            return dict(event)
    raise AssertionError(f"{event_id} is not on the raw topic")


def view_tokens(settings: Settings) -> ViewTokens:
    keyring = KeyRing.load(settings.keyring_path)
    return ViewTokens(keyring, settings.linkage_key_id or keyring.ids[0])


def vru_token(settings: Settings, person: str) -> str:
    """The VRU's own token for a linked person: what its person view is keyed by."""
    return view_tokens(settings).token("vru_analysts", person)


def profile(worker: WorkerProcess, settings: Settings, person: str) -> dict[str, Any] | None:
    token = vru_token(settings, person)
    resp = httpx.get(f"{worker.url}/api/persons/{token}", headers=worker.analyst, timeout=5)
    return resp.json() if resp.status_code == 200 else None


def factors(p: dict[str, Any] | None) -> dict[str, int]:
    if p is None:
        return {}
    raw = p.get("factors", {})
    items = raw.items() if isinstance(raw, dict) else ((f["factor"], f) for f in raw)
    return {name: int(stats["count"]) for name, stats in items}


def sink_factors(settings: Settings, token: str) -> dict[str, int]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        if conn.execute("SELECT to_regclass('person_factors')").fetchone() == (None,):
            return {}
        rows = conn.execute(
            "SELECT factor, count FROM person_factors WHERE person_token = %s", (vru_token(settings, token),)
        )
        return {str(f): int(c) for f, c in rows}


def sharebus(settings: Settings, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")} | settings.to_env()
    done = subprocess.run(
        [sys.executable, "-m", "sharebus.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def subject_access(settings: Settings, identifier: str) -> dict[str, Any]:
    officer = as_caller(settings, "schools.sar.officer")  # the shipped rights-roles.yaml
    return json.loads(sharebus(officer, "subject-access", "--partner", SCHOOLS, "--identifier", identifier))


@pytest.fixture
def stack(stack_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[Settings, WorkerProcess]]:
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    (agreements / "education-vru.yaml").write_text(EDUCATION_VRU)
    (agreements / "education-csp.yaml").write_text(EDUCATION_CSP)
    settings = stack_factory(agreements_dir=agreements)
    worker = start_worker(settings, tmp_path / "logs", wait=False)  # tests wait once they have published
    try:
        yield settings, worker
    finally:
        discard(worker)
        for key in [k for k in _PUBLISHERS if k[0] == settings.bootstrap_servers]:
            _PUBLISHERS.pop(key).close()


# --- tests ---------------------------------------------------------------------------------------


def test_erasure_reaches_every_recipient_the_views_and_the_vault(
    stack: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = stack
    sam, tom, olu = child(1, "Sam", "Carter"), child(2, "Tom", "Baker"), child(3, "Olu", "Adeyemi")
    sam_ids = [
        publish(settings, SCHOOLS, EXCLUSION, exclusion(sam, d))["envelope"]["event_id"] for d in (2, 9)
    ]
    tom_ids = [
        publish(settings, SCHOOLS, EXCLUSION, exclusion(tom, d))["envelope"]["event_id"] for d in (3, 10)
    ]
    olu_id = publish(settings, SCHOOLS, EXCLUSION, exclusion(olu, 4))["envelope"]["event_id"]
    police_id = publish(settings, POLICE, STOP_SEARCH, stop_search(sam))["envelope"]["event_id"]
    school_ids = [*sam_ids, *tom_ids, olu_id]
    worker.wait_ready()
    stored_decisions(settings, school_ids, shared=3)
    stored_decisions(settings, [police_id], shared=1)
    sam_person, tom_person = person_of(settings, sam_ids[0]), person_of(settings, tom_ids[0])
    assert person_of(settings, police_id) == sam_person, "the police record links to the school's"
    both = {"school_exclusion": 2, "weapon_carrying": 1}
    wait_for(
        lambda: factors(profile(worker, settings, sam_person)) == both, "Sam's profile from both controllers"
    )
    wait_for(lambda: sink_factors(settings, tom_person).get("school_exclusion") == 2, "Tom's sink rows")

    # The police do not own the school's events: refused, audited, nothing sent.
    refused_id = request(settings, POLICE, "erase", event_ids=sam_ids)
    steps = request_steps(settings, refused_id)
    assert {(s["event_id"], s["outcome"], s["reason"]) for s in steps if s["action"] == "refuse"} == {
        (e, "denied", NOT_OWNER) for e in sam_ids
    }
    assert [s["outcome"] for s in steps if s["action"] == "request"] == ["denied"]
    assert not any(s["action"] == "retract" for s in steps)

    report = subject_access(settings, f"upn={sam['upn']}")
    assert {(s["event_id"], s["recipient"]["id"]) for s in report["sharings"]} == {
        (e, r) for e in sam_ids for r in RECIPIENTS
    }
    assert "other_controllers" not in report  # the police's stop and search: not even counted
    assert police_id not in json.dumps(report) and "stop_search" not in json.dumps(report)
    vru = next(s for s in report["sharings"] if s["recipient"]["id"] == "vru_analysts")
    assert vru["fields"]["transformed"]["subject.upn"] == "pseudonymise"
    assert any("public task" in b for b in vru["agreement"]["lawful_basis"])

    # Sam by identifier, through the CLI; Tom by event ids.
    sam_request = sharebus(
        as_caller(settings, "schools.sar.officer"), "request", "--partner", SCHOOLS, "--kind", "erase",
        "--identifier", f"upn={sam['upn']}", "--reason", "Art 17 request from the child's parent",
    ).strip().removeprefix("request: ")  # fmt: skip
    tom_request = request(settings, SCHOOLS, "erase", event_ids=tom_ids)
    for rid in (sam_request, tom_request):
        assert [s["outcome"] for s in request_steps(settings, rid) if s["action"] == "request"] == ["applied"]

    # Every recipient got one tombstone per erased event, keyed as it received the original.
    with AuditStore(settings.postgres_dsn) as store:
        keys = {
            (r["event_id"], r["recipient"]): r["output_key"]
            for e in school_ids
            for r in store.by_event(e)
            if r["outcome"] == "shared"
        }
    owner_of = {e: sam_request for e in sam_ids} | {e: tom_request for e in tom_ids}
    for recipient in RECIPIENTS:
        tombstones = [(k, h) for k, h, v in shared_records(settings, recipient) if v is None]
        assert sorted(tombstones, key=lambda t: t[1][HEADER_RETRACTS]) == sorted(
            (
                (keys[(e, recipient)], {HEADER_RETRACTS: e, HEADER_REQUEST_ID: owner_of[e]})
                for e in [*sam_ids, *tom_ids]
            ),
            key=lambda t: t[1][HEADER_RETRACTS],
        ), recipient

    # The views (API and PostgreSQL) no longer count the erased events; the police's still counts.
    wait_for(
        lambda: "school_exclusion" not in factors(profile(worker, settings, sam_person)),
        "Sam's exclusions unviewed",
    )
    assert factors(profile(worker, settings, sam_person)) == {"weapon_carrying": 1}
    wait_for(lambda: profile(worker, settings, tom_person) is None, "Tom's profile gone")
    wait_for(lambda: sink_factors(settings, sam_person) == {"weapon_carrying": 1}, "Sam's sink rows")
    wait_for(lambda: sink_factors(settings, tom_person) == {}, "Tom's sink rows gone")
    assert factors(profile(worker, settings, person_of(settings, olu_id))) == {"school_exclusion": 1}

    # The vault: the school can no longer re-identify either child; the police still can (their own
    # record), and Tom, all of whose records went, was forgotten whole (the linker is told too).
    owners = Identities(settings, owners_of(SCHOOLS, POLICE))
    dsn = settings.postgres_dsn
    assert owners.reidentify(dsn, sam_person, SCHOOLS, JUSTIFICATION) == []
    assert owners.reidentify(dsn, tom_person, SCHOOLS, JUSTIFICATION) == []
    police_ids = owners.reidentify(dsn, sam_person, POLICE, JUSTIFICATION)
    assert {i.kind for i in police_ids} >= {"given_name", "family_name"}
    erased = [r["outcome"] for r in VaultAccess(dsn).audit_log(tom_person) if r["outcome"] == "erased"]
    assert erased == ["erased"]
    forgets = [
        json.loads(m.value())
        for m in read_to_end(reader_config(settings), topics.LINK_IDENTIFIERS)
        if (m.key() or b"").startswith(b"forget:")
    ]
    assert forgets == [{"kind": "forget", "person_tokens": [tom_person], "request_id": tom_request}]

    # Subject access afterwards: the sharings are still reported, as retracted by the request.
    after = subject_access(settings, f"upn={sam['upn']}")
    assert {(s["event_id"], s["recipient"]["id"], s["status"]) for s in after["sharings"]} == {
        (e, r, "retracted") for e in sam_ids for r in RECIPIENTS
    }
    assert [(r["request_id"], r["kind"]) for r in after["requests"]] == [(sam_request, "erase")]
    officer = as_caller(settings, "schools.sar.officer")
    html = sharebus(officer, "subject-access", "--partner", SCHOOLS, "--identifier", f"upn={sam['upn']}",
                    "--format", "html")  # fmt: skip
    assert html.count("retracted") == len(after["sharings"]) and "<script" not in html
    assert "OK" in sharebus(settings, "audit", "verify")  # request records kept every chain intact


def test_rectification_restriction_and_retention(stack: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = stack
    ada, ben = child(11, "Ada", "Lovell"), child(12, "Ben", "Okafor")
    first = publish(settings, SCHOOLS, EXCLUSION, exclusion(ada, 2))
    second = publish(settings, SCHOOLS, EXCLUSION, exclusion(ada, 9))
    ben_first = publish(settings, SCHOOLS, EXCLUSION, exclusion(ben, 5))
    ids = [r["envelope"]["event_id"] for r in (first, second, ben_first)]
    worker.wait_ready()
    stored_decisions(settings, ids, shared=3)

    def shared_originals() -> dict[str, dict[str, tuple[str, dict[str, Any]]]] | None:
        found = {
            r: {v["envelope"]["event_id"]: (k, v) for k, _, v in shared_records(settings, r) if v}
            for r in RECIPIENTS
        }
        return found if all(set(ids) <= set(f) for f in found.values()) else None

    originals = wait_for(shared_originals, "the originals on every recipient's topic")

    new_upn = upn(99)
    fix_first = {"reason": '"OFFENSIVE_WEAPON"', "subject.upn": json.dumps(new_upn)}
    r1 = request(settings, SCHOOLS, "rectify", event_ids=[ids[0]], corrections=fix_first)
    r2 = request(
        settings, SCHOOLS, "rectify", event_ids=[ids[1]], corrections={"exclusion_type": '"LUNCHTIME"'}
    )
    for rid in (r1, r2):
        assert [s["outcome"] for s in request_steps(settings, rid) if s["action"] == "request"] == ["applied"]

    # What each recipient must now see, from the agreements: its original record with the corrected
    # fields in its own form (the reason as is, the UPN as a new token in its own domain; the CSP
    # receives no subject); a lunchtime exclusion is outside the YJS agreement's `where`, so the YJS
    # gets a retraction of the second event and the others its corrected record.
    tokens = {}
    for recipient in RECIPIENTS:
        records = shared_records(settings, recipient)
        key, original = originals[recipient][ids[0]]
        assert original["reason"] != "OFFENSIVE_WEAPON"
        corrections = [(k, v) for k, h, v in records if h.get(HEADER_CORRECTS) == ids[0]]
        assert [k for k, _ in corrections] == [key], recipient
        corrected = corrections[0][1]
        assert corrected is not None
        expected = {**original, "reason": "OFFENSIVE_WEAPON"}
        if recipient != "reading_csp":  # a new token for the corrected UPN, in the recipient's own domain
            tokens[recipient] = corrected["subject"]["upn"]
            assert re.fullmatch(r"[a-z0-9]+\.[a-z2-7]{26}", tokens[recipient]), tokens[recipient]
            assert tokens[recipient] != original["subject"]["upn"]
            expected["subject"] = {**original["subject"], "upn": tokens[recipient]}
        else:
            assert "subject" not in corrected and new_upn not in json.dumps(corrections, default=str)
        assert corrected == expected, recipient
        second_key, second = originals[recipient][ids[1]]
        got = [(k, v) for k, h, v in records if ids[1] in (h.get(HEADER_CORRECTS), h.get(HEADER_RETRACTS))]
        if recipient == "reading_yjs_team":
            assert got == [(second_key, None)]
        else:
            assert got == [(second_key, {**second, "exclusion_type": "LUNCHTIME"})], recipient
    assert tokens["vru_analysts"] != tokens["reading_yjs_team"]  # two domains, not joinable

    # A second rectification of the first event keeps the first one's corrections.
    r3 = request(settings, SCHOOLS, "rectify", event_ids=[ids[0]], corrections={"sessions": "6"})
    request_steps(settings, r3)
    latest = [v for k, h, v in shared_records(settings, "vru_analysts") if h.get(HEADER_REQUEST_ID) == r3]
    assert len(latest) == 1 and latest[0]["reason"] == "OFFENSIVE_WEAPON"
    assert latest[0]["subject"]["upn"] == tokens["vru_analysts"]

    # Restriction: Ben's new events are not shared (audited as restricted), Ada's still are.
    restricting = sharebus(
        as_caller(settings, "schools.sar.officer"), "request", "--partner", SCHOOLS, "--kind", "restrict",
        "--identifier", f"upn={ben['upn']}", "--reason", "accuracy contested (Art 18(1)(a))",
    ).strip().removeprefix("request: ")  # fmt: skip
    assert [s["outcome"] for s in request_steps(settings, restricting) if s["action"] == "restrict"] == [
        "applied"
    ]
    ben_new = publish(settings, SCHOOLS, EXCLUSION, exclusion(ben, 16))["envelope"]["event_id"]
    ada_new = publish(settings, SCHOOLS, EXCLUSION, exclusion(ada, 17))["envelope"]["event_id"]
    stored_decisions(settings, [ada_new], shared=3)
    ben_decisions = wait_for(
        lambda: [r for r in audit(settings) if r.get("event_id") == ben_new], "Ben's decision"
    )
    assert [(r["recipient"], r["outcome"]) for r in ben_decisions] == [("*", "denied")]
    assert ben_decisions[0]["reason"].startswith("restricted:") and restricting in ben_decisions[0]["reason"]
    for recipient in RECIPIENTS:
        assert ben_new not in json.dumps([v for _, _, v in shared_records(settings, recipient)], default=str)

    lifting = request(settings, SCHOOLS, "unrestrict", subject={"upn": ben["upn"]})
    request_steps(settings, lifting)
    ben_later = publish(settings, SCHOOLS, EXCLUSION, exclusion(ben, 23))["envelope"]["event_id"]
    stored_decisions(settings, [ben_later], shared=3)

    # Retention: nothing of the school's goes before its longest agreement (730 days) runs out; then
    # the views, the sink and the vault forget every event.
    ben_person = person_of(settings, ben_later)
    wait_for(lambda: sink_factors(settings, ben_person).get("school_exclusion") == 2, "Ben's sink rows")
    dry = json.loads(sharebus(settings, "retention", "purge", "--dry-run"))
    assert dry["dry_run"] and dry["expired_events"] == 0 and dry["cutoffs"][SCHOOLS]
    catalogue = load_catalogue(settings.schemas_dir)
    agreements = load_agreements(settings.agreements_dir, catalogue)
    send = DeliveringProducer(settings.kafka_config()).send_all
    soon = purge(
        settings.postgres_dsn,
        agreements,
        catalogue,
        send,
        now=datetime.now(UTC) + timedelta(days=700),
        view_tokens=view_tokens(settings),
    )
    assert soon.expired_events == 0 and soon.vault_rows == 0
    late = purge(
        settings.postgres_dsn,
        agreements,
        catalogue,
        send,
        now=datetime.now(UTC) + timedelta(days=731),
        view_tokens=view_tokens(settings),
    )
    assert late.expired_events == 6 and late.vault_rows > 0  # 5 shared, and Ben's restricted one
    wait_for(lambda: profile(worker, settings, ben_person) is None, "Ben's profile purged")
    wait_for(lambda: sink_factors(settings, ben_person) == {}, "Ben's sink rows purged")
    with psycopg.connect(settings.postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM vault_links").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM vault_identities").fetchone() == (0,)
    again = purge(
        settings.postgres_dsn,
        agreements,
        catalogue,
        send,
        now=datetime.now(UTC) + timedelta(days=731),
        view_tokens=view_tokens(settings),
    )
    assert again.expired_events == 0  # purged once, recorded in retention_purged
