"""Publishing an extract again changes nothing anywhere, and a corrected row corrects what recipients hold.

Real worker, broker, registry and PostgreSQL.

A school's daily extracts overlap, a failed run is retried, a month is backfilled: the same rows
arrive again. Their event ids come from each row's record key, so the second run is the same
seven events, and every stage that keeps state de-duplicates them: the events recipients hold
on their shared topics, the audit ledger's PostgreSQL copy, the person profiles, the area counts
and the subject access report are what they were after the first run.

A row published again with a field changed (the same record key) is a correction: the publisher's
ledger sees the change and asks the bus to rectify the event, so every recipient receives the
corrected event in its own form (header `sharingbus.corrects`), the profile counts the corrected
factors, and no second event appears anywhere.

Each round ends with a sentinel exclusion per pupil, published after the round's events were
decided: a pupil's records reach the views in order (keyed by the pupil's token), so once every
sentinel is counted, everything before it was too.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from streams import topics
from streams.enforce.audit_store import AuditStore
from streams.linkage.view_tokens import ViewTokens
from streams.privacy.identifiers import upn_check_letter
from streams.privacy.keys import KeyRing
from streams.publish.publisher import Publisher
from streams.settings import ROOT, Settings
from tests.support.reid import as_caller
from tests.support.stack import audit_records, decoded, header, sharebus, shared_event_ids, wait_until
from tests.workers import WorkerProcess, discard, start_worker

SCHOOLS, EXCLUSION = "reading_schools", "education.exclusion"
LSOA = "E01016001"  # Reading 001A
RECIPIENTS = ("reading_csp", "reading_yjs_team", "vru_analysts")
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
      location.lsoa_code: keep
      exclusion_type: keep
      start_date: {truncate_date: {unit: month}}
      reason: keep
"""


def upn(n: int) -> str:
    last12 = f"870{n:09d}"
    return upn_check_letter(last12) + last12


PUPILS = {upn(31): ("Ada", "Lovell"), upn(32): ("Ben", "Okafor"), upn(33): ("Cal", "Reyes")}
# Seven rows, as in the finding: (pupil, day of March 2026, reason)
ROWS = [
    (upn(31), 2, "PHYSICAL_ASSAULT_AGAINST_PUPIL"),
    (upn(31), 3, "VERBAL_ABUSE_AGAINST_ADULT"),
    (upn(31), 4, "OFFENSIVE_WEAPON"),
    (upn(32), 2, "PERSISTENT_DISRUPTIVE_BEHAVIOUR"),
    (upn(32), 5, "BULLYING"),
    (upn(33), 6, "DAMAGE"),
    (upn(33), 9, "OTHER"),
]


def row(pupil: str, day: int, reason: str) -> dict[str, str]:
    given, family = PUPILS[pupil]
    return {
        "envelope.occurred_at": f"2026-03-{day:02d}T09:00:00",
        "subject.upn": pupil,
        "subject.given_name": given,
        "subject.family_name": family,
        "subject.date_of_birth": "04/05/2012",
        "location.lsoa_code": LSOA,
        "school_urn": "109012",
        "exclusion_type": "Suspension",
        "start_date": f"{day:02d}/03/2026",
        "sessions": "3",
        "reason": reason,
    }


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def bus(stack_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[Settings, WorkerProcess]]:
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    (agreements / "education-vru.yaml").write_text(EDUCATION_VRU)
    (agreements / "education-csp.yaml").write_text(EDUCATION_CSP)
    settings = stack_factory(agreements_dir=agreements)
    worker = start_worker(settings, tmp_path / "logs")
    try:
        yield settings, worker
    finally:
        discard(worker)


def publish_extract(settings: Settings, path: Path) -> None:
    done = sharebus(settings, "publish", "--partner", SCHOOLS, "--event-type", EXCLUSION, str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"published: {len(ROWS)}, rejected: 0" in done.stdout


def decisions_on_topic(settings: Settings) -> int:
    return sum(r.get("kind") == "decision" for r in audit_records(settings))


def settle(settings: Settings, day: int) -> set[str]:
    """Publish one sentinel exclusion per pupil on `day` and wait until the views counted them all."""
    with Publisher(settings, SCHOOLS) as pub:
        ids = {pub.publish(EXCLUSION, {**_nested(row(pupil, day, "OTHER"))}).event_id for pupil in PUPILS}

    def counted() -> bool:
        tokens = person_tokens(settings, ids)
        if len(tokens) != len(PUPILS):
            return False
        last = {
            t: f.get("school_exclusion", {}).get("last_seen") for t, f in person_factors(settings).items()
        }
        return all(str(last.get(t) or "").startswith(f"2026-03-{day:02d}") for t in tokens)

    wait_until(counted, 120, f"the day-{day} sentinels in the profiles")
    return ids


def _nested(flat: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _rows(settings: Settings, sql: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            return []
        return list(conn.execute(sql))


def person_tokens(settings: Settings, event_ids: set[str]) -> set[str]:
    """The VRU's own tokens (its person view's keys) for the people these events are about."""
    rows = _rows(settings, "SELECT event_id, person_token FROM vault_links", "vault_links")
    keyring = KeyRing.load(settings.keyring_path)
    tokens = ViewTokens(keyring, settings.linkage_key_id or keyring.ids[0])
    return {tokens.token("vru_analysts", str(t)) for e, t in rows if str(e) in event_ids}


def person_factors(settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    rows = _rows(
        settings,
        "SELECT person_token, factor, count, first_seen, last_seen, partners FROM person_factors",
        "person_factors",
    )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for token, factor, count, first, last, partners in rows:
        out.setdefault(str(token), {})[str(factor)] = {
            "count": int(count),
            "first_seen": first.isoformat(),
            "last_seen": last.isoformat(),
            "partners": sorted(partners),
        }
    return out


EXTRACT_WEEKS = ("2026-W10", "2026-W11")  # the weeks of the seven rows; the sentinels' come later


def area_counts(settings: Settings) -> dict[tuple[str, str, str], int | None]:
    """The published cells of the extract's weeks (frozen snapshots, distinct people per cell)."""
    rows = _rows(settings, "SELECT area, week, factor, count FROM area_counts", "area_counts")
    return {(str(a), str(w), str(f)): c for a, w, f, c in rows if str(w) in EXTRACT_WEEKS}


def stored(settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute("SELECT event_id, recipient, record FROM audit_decisions").fetchall()
    return {(str(e), str(r)): dict(rec) for e, r, rec in rows}


def shared_ids(settings: Settings) -> dict[str, set[str]]:
    """Per shared topic, the events it carries (corrections and retractions carry no event id header)."""
    return {t: {eid for eid, _, _ in recs if eid} for t, recs in shared_event_ids(settings).items()}


def access(settings: Settings, pupil: str) -> dict[str, Any]:
    officer = as_caller(settings, "schools.sar.officer")  # the shipped rights-roles.yaml
    done = sharebus(officer, "subject-access", "--partner", SCHOOLS, "--identifier", f"upn={pupil}")
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def sharings(report: dict[str, Any], leave_out: set[str]) -> list[str]:
    """The report's sharings as comparable text, without the sentinels' events."""
    text = json.dumps(report, sort_keys=True)
    found = [
        json.dumps(item, sort_keys=True)
        for item in _items(report)
        if isinstance(item, dict) and "event_id" in item and item["event_id"] not in leave_out
    ]
    assert found, f"no sharings in the report: {text[:300]}"
    return sorted(found)


def _items(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _items(value)
    elif isinstance(node, list):
        for value in node:
            yield from _items(value)


def test_the_same_extract_published_twice_changes_nothing_anywhere(
    bus: tuple[Settings, WorkerProcess], tmp_path: Path
) -> None:
    settings, _worker = bus
    extract = write_csv(tmp_path / "exclusions.csv", [row(*r) for r in ROWS])

    publish_extract(settings, extract)
    first_sentinels = settle(settings, 20)
    wait_until(
        lambda: {w for _, w, _ in area_counts(settings)} == set(EXTRACT_WEEKS),
        120,
        "the extract's weeks in the published area counts (closed, quiet for 3 s)",
    )
    decided = decisions_on_topic(settings)
    before = {
        "shared": shared_ids(settings),
        "stored": stored(settings),
        "profiles": person_factors(settings),
        "areas": area_counts(settings),
        "access": {p: access(settings, p) for p in PUPILS},
    }
    event_ids = {e for e, _ in before["stored"]} - first_sentinels
    assert len(event_ids) == len(ROWS)
    counts = Counter(f["school_exclusion"]["count"] for f in before["profiles"].values())
    assert counts == Counter({4: 1, 3: 2})  # 3 + sentinel, 2 + sentinel, 2 + sentinel

    first_run = sum(
        r.get("event_id") in event_ids for r in audit_records(settings) if r.get("kind") == "decision"
    )

    publish_extract(settings, extract)
    # The second run reaches the enforcer (its rows decided on the topic) before the sentinels do.
    wait_until(
        lambda: decisions_on_topic(settings) >= decided + first_run, 120, "the second run to be decided"
    )
    second_sentinels = settle(settings, 27)
    after_shared = shared_ids(settings)
    after_stored = stored(settings)

    # Recipients hold the same events: no new event id on any shared topic but the sentinels'.
    assert any(before["shared"].values()), "the first run shared nothing"
    assert {t: ids - second_sentinels for t, ids in after_shared.items()} == before["shared"]
    # The ledger's PostgreSQL copy: the same decisions, unchanged, plus the sentinels'.
    assert {k: v for k, v in after_stored.items() if k[0] not in second_sentinels} == before["stored"]
    # Profiles: each pupil's exclusions counted once (plus one more sentinel), nothing else moved.
    after_profiles = person_factors(settings)
    assert set(after_profiles) == set(before["profiles"])
    for token, factors in after_profiles.items():
        was = before["profiles"][token]
        assert factors["school_exclusion"]["count"] == was["school_exclusion"]["count"] + 1, token
        assert {f: v for f, v in factors.items() if f != "school_exclusion"} == {
            f: v for f, v in was.items() if f != "school_exclusion"
        }
    # Area counts: what was published is what it was (frozen weeks of distinct people; the views'
    # own de-duplication by event id keeps the second run out of the weeks still open).
    assert area_counts(settings) == before["areas"]
    # Subject access: every sharing listed once, as before.
    for pupil in PUPILS:
        assert sharings(access(settings, pupil), second_sentinels) == sharings(
            before["access"][pupil], set()
        ), pupil
    with AuditStore(settings.postgres_dsn) as store:
        assert {r["event_id"] for r in store.by_event(next(iter(event_ids)))} == {next(iter(event_ids))}


def test_a_corrected_row_updates_what_recipients_hold(
    bus: tuple[Settings, WorkerProcess], tmp_path: Path
) -> None:
    settings, _worker = bus
    rows = [row(*r) for r in ROWS]
    publish_extract(settings, write_csv(tmp_path / "monday.csv", rows))
    settle(settings, 20)
    before = shared_ids(settings)
    pupil = upn(32)  # Ben: excluded on 2 March for persistent disruption, the school now says a weapon
    vru = decoded(settings, topics.shared("vru_analysts", EXCLUSION))
    original = [r for _, r in vru if r["start_date"] == date(2026, 3, 2) and r["reason"] == ROWS[3][2]]
    assert len(original) == 1 and ROWS[3][0] == pupil
    event_id = str(original[0]["envelope"]["event_id"])

    rows[3] = row(pupil, 2, "OFFENSIVE_WEAPON") | {"sessions": "5"}
    done = sharebus(
        settings,
        "publish",
        "--partner",
        SCHOOLS,
        "--event-type",
        EXCLUSION,
        str(write_csv(tmp_path / "tue.csv", rows)),
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def corrections() -> dict[str, list[dict[str, Any]]] | None:
        found = {
            r: [
                v
                for m, v in decoded(settings, topics.shared(r, EXCLUSION))
                if header(m, "sharingbus.corrects")
            ]
            for r in RECIPIENTS
        }
        return found if all(found.values()) else None

    got = wait_until(corrections, 120, "every recipient's correction")
    for recipient, records in got.items():
        assert len(records) == 1 and records[0]["reason"] == "OFFENSIVE_WEAPON", recipient
        assert str(records[0]["envelope"]["event_id"]) == event_id, recipient
    assert got["reading_yjs_team"][0]["sessions"] == 5
    assert "published: 7, rejected: 0, corrected: 1" in done.stdout
    # No second event: recipients hold the same event ids as before the corrected extract.
    assert shared_ids(settings) == before
    raw = [m for m in read_raw(settings) if (m.key() or b"").decode() == event_id]
    assert len(raw) == 1  # the corrected row went as a rectification request, not as a second version

    # The views count the corrected event: a weapon now, and still one exclusion each.
    token = next(iter(person_tokens(settings, {event_id})))
    factors = wait_until(
        lambda: (f := person_factors(settings).get(token, {})) and "weapon_carrying" in f and f,
        120,
        "the corrected event in the profile",
    )
    assert factors["weapon_carrying"]["count"] == 1
    assert factors["school_exclusion"]["count"] == 3  # two rows and the sentinel, as before
    statuses = {
        s["recipient"]["id"]: s["status"]
        for s in access(settings, pupil)["sharings"]
        if s["event_id"] == event_id
    }
    assert statuses == dict.fromkeys(RECIPIENTS, "corrected")


def read_raw(settings: Settings) -> list[Any]:
    from tests.support.stack import read_topic

    return read_topic(settings, topics.raw(SCHOOLS, EXCLUSION))
