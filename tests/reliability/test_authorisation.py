"""Authorisation end to end: who may say what, who receives what, who may re-identify whom.

- A partner cannot speak for another: an event on partner A's raw topic whose envelope claims
  partner B is dead-lettered (`spoofed_partner`) and reaches nobody: no decision, no shared record,
  whichever way round (here: a school without an agreement claiming to be the one that has one).
- A recipient with no agreement receives nothing: no shared topic for it has a record, and the
  ledger shows the default denial, naming it, for every event.
- Re-identification (`sharebus reidentify`, a real subprocess over the vault the enforcer filled)
  is granted only to the owning partner's data owner with a justification; asking for another
  partner's data, without a justification, or without saying who you are is refused, prints
  nothing identifying, and is audited (`reidentification_audit`) like every granted request.
"""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streams import deadletter as dl
from streams import topics
from streams.avro.serde import encode
from streams.publish.publisher import prepare_event
from streams.publish.simulate import Simulation
from streams.registry.client import RegistrySchemas, registry_client
from streams.settings import ROOT
from tests.support.stack import (
    Stack,
    audit_records,
    header,
    open_stack,
    produce_all,
    publish,
    query,
    raw_producer,
    read_topic,
    shared_event_ids,
    topic_names,
    wait_decided,
    wait_until,
)
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

UNAGREED = "unagreed_analysts"


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, WorkerProcess]]:
    """One bus for this module, whose recipients include one that no agreement names."""
    root = tmp_path_factory.mktemp("authorisation")
    agreements = root / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    with (agreements / "recipients.yaml").open("a") as fh:
        fh.write(
            f"\n  - id: {UNAGREED}\n    name: Analysts no agreement names\n"
            "    organisation: Nowhere Council\n    tier: individual\n"
        )
    with open_stack(root / "bus", agreements_dir=agreements) as stack:
        yield stack, stack.start_worker()


def test_spoofed_partners_and_unagreed_recipients_receive_nothing(bus: tuple[Stack, WorkerProcess]) -> None:
    stack, worker = bus
    settings = stack.settings
    catalogue = stack.catalogue
    assert UNAGREED in stack.planset().recipients
    events = list(Simulation(seed=505, people=300).events(600))
    published = publish(settings, events)
    ids = {p.event_id for p in published}

    # Spoof both ways between the two school partners: only reading_schools has an agreement
    # (education -> reading_yjs_team), so a spoof accepted either way would share or mislabel data.
    schemas = RegistrySchemas(registry_client(settings))
    spoofs: dict[str, tuple[str, str]] = {}  # event id -> (topic's partner, claimed partner)
    records: list[tuple[str, bytes | None, bytes | None]] = []
    pairs = [("oxfordshire_schools", "reading_schools"), ("reading_schools", "oxfordshire_schools")]
    pairs += [("thames_valley_police", "reading_yjs"), ("reading_childrens_services", "thames_valley_police")]
    for p in published:
        for owner, claimed in pairs:
            if p.partner not in (owner, claimed) or p.event_type not in catalogue.partner(owner).event_types:
                continue
            record = copy.deepcopy(prepare_event(catalogue, p.partner, p.event_type, p.record))
            record["envelope"]["event_id"] = eid = str(uuid.uuid4())
            record["envelope"]["source_partner"] = claimed if p.partner == owner else owner
            topic = topics.raw(p.partner, p.event_type)
            et = catalogue.event_type(p.event_type)
            schema_id = schemas.id_for(topics.value_subject(topic), et.schema)
            records.append((topic, eid.encode(), encode(et.parsed, schema_id, record)))
            spoofs[eid] = (p.partner, record["envelope"]["source_partner"])
    assert len(spoofs) >= 20
    assert {owner for owner, _ in spoofs.values()} >= {"oxfordshire_schools", "reading_schools"}
    produce_all(raw_producer(settings), records)
    audit = wait_decided(settings, ids, timeout=120)

    def dead() -> dict[str, str | None] | None:
        letters = {
            (m.key() or b"").decode(): header(m, "sharingbus.dlq.reason")
            for m in read_topic(settings, "dlq.enforcer")
        }
        return letters if spoofs.keys() <= letters.keys() else None

    letters = wait_until(dead, 60, "every spoofed event to be dead-lettered", 1.0)
    assert {letters[e] for e in spoofs} == {dl.SPOOFED_PARTNER}
    assert letters.keys() == spoofs.keys(), "only the spoofed events are dead letters"

    audit = audit_records(settings)
    assert spoofs.keys().isdisjoint({r["event_id"] for r in audit})
    shared = shared_event_ids(settings)
    assert spoofs.keys().isdisjoint({e for recs in shared.values() for e, _, _ in recs})

    # The recipient no agreement names: nothing on any topic of its own, a denial for every event.
    assert all(not shared[t] for t in topic_names(settings, f"shared.{UNAGREED}."))
    assert not [r for r in audit if r["recipient"] == UNAGREED]
    denials = {r["event_id"]: r["reason"] for r in audit if r["recipient"] == "*"}
    assert denials.keys() >= ids
    assert all(UNAGREED in reason for reason in denials.values())
    assert worker.proc.poll() is None


# --- re-identification ----------------------------------------------------------------------------

OWNER = "thames_valley_police"
JUSTIFICATION = "Safeguarding referral 4411: MASH needs to contact the young person's school"


def _audit_rows(dsn: str) -> list[dict[str, Any]]:
    rows = query(
        dsn,
        "SELECT requester, partner, token, justification, outcome, reason, returned "
        "FROM reidentification_audit ORDER BY id",
    )
    names = ("requester", "partner", "token", "justification", "outcome", "reason", "returned")
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_reidentification_only_for_the_owner_with_a_justification_and_always_audited(
    bus: tuple[Stack, WorkerProcess],
) -> None:
    stack, _ = bus
    settings = stack.settings
    published = publish(settings, Simulation(seed=606, people=200).events(400))
    wait_decided(settings, {p.event_id for p in published})

    def linked() -> list[tuple[str, str, str]] | None:
        rows = query(
            settings.postgres_dsn,
            "SELECT l.person_token, i.partner, i.value FROM vault_links l JOIN vault_identities i "
            "ON i.event_id = l.event_id AND i.token = ANY (l.tokens)",
        )
        rows = [(str(t), str(p), str(v)) for t, p, v in rows]
        return rows if any(p == OWNER for _, p, _ in rows) else None

    rows = wait_until(linked, 90, "the vault to link people the police sent", 2.0)
    assert rows is not None
    others = {v for _, p, v in rows if p != OWNER}
    by_person: dict[str, set[str]] = {}
    for t, p, v in rows:
        if p == OWNER:
            by_person.setdefault(t, set()).add(v)
    # The person with the most identifiers that only the police sent (so they show who got what).
    token = max(by_person, key=lambda t: (len(by_person[t] - others), t))
    owner_values = by_person[token]
    police_only = owner_values - others
    assert police_only, "the police should hold identifiers nobody else sent"

    def ask(requester: str, justification: str | None, *extra: str) -> tuple[int, str, str]:
        args = ["reidentify", "--token", token, "--requester", requester, "--json", *extra]
        if justification is not None:
            args += ["--justification", justification]
        result = stack.sharebus(*args, timeout=60)
        return result.returncode, result.stdout, result.stderr

    # The owner's data owner, with a reason: the police's own identifiers, and only theirs.
    code, out, err = ask(f"{OWNER}:dpo.jones", JUSTIFICATION)
    assert code == 0, err
    returned = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert returned and {r["value"] for r in returned} <= owner_values
    assert police_only & {r["value"] for r in returned}

    refusals = [
        ("reading_schools:dpo.smith", JUSTIFICATION, ("--partner", OWNER), "not a data owner"),
        (f"{OWNER}:dpo.jones", "", (), "justification"),
        (f"{OWNER}:dpo.jones", "   \t  ", (), "justification"),
        (f"{OWNER}:dpo.jones", "because", (), "justification"),
        ("dpo.jones", JUSTIFICATION, ("--partner", OWNER), "requester"),
        (f"{OWNER}:", JUSTIFICATION, (), "requester"),
        (f"{OWNER}:dpo.jones", JUSTIFICATION, ("--partner", "reading_schools"), "not a data owner"),
    ]
    with ThreadPoolExecutor(len(refusals)) as pool:  # independent requests: asked at once
        answers = list(pool.map(lambda r: ask(r[0], r[1], *r[2]), refusals))
    for (requester, justification, extra, why), (code, out, err) in zip(refusals, answers, strict=True):
        assert code == 2, (requester, justification, extra, code, err)
        assert "refused" in err and why in err, err
        assert not any(v in out + err for v in owner_values), "a refusal printed an identifier"

    # Another partner asking as itself gets its own records only, never the police's.
    code, out, err = ask("reading_schools:dpo.smith", JUSTIFICATION)
    assert code == 0, err
    assert not police_only & {json.loads(line)["value"] for line in out.splitlines() if line.strip()}

    # No justification at all is a usage error: nothing reaches the vault, nothing to audit.
    before = len(_audit_rows(settings.postgres_dsn))
    code, out, err = ask(f"{OWNER}:dpo.jones", None)
    assert code == 2 and "justification" in err and not out
    assert len(_audit_rows(settings.postgres_dsn)) == before

    # Every request that reached the vault is in the audit: who, for whom, why, what came of it.
    audit = _audit_rows(settings.postgres_dsn)
    assert [a["outcome"] for a in audit] == ["granted"] + ["refused"] * len(refusals) + [
        "granted" if audit[-1]["returned"] else "not_found"
    ]
    assert audit[0]["requester"] == f"{OWNER}:dpo.jones" and audit[0]["returned"] == len(returned)
    assert audit[0]["justification"] == JUSTIFICATION and audit[0]["token"] == token
    # The refusals reached the vault in whatever order they were asked in: match them up by who
    # asked with what justification (the two blank justifications expect the same row).
    refused = sorted(audit[1 : 1 + len(refusals)], key=lambda a: (a["requester"], a["justification"]))
    asked = sorted(refusals, key=lambda r: (r[0], r[1].strip()))
    for row, (requester, justification, _, why) in zip(refused, asked, strict=True):
        assert row["requester"] == requester and row["returned"] == 0 and row["token"] == token
        assert row["justification"] == justification.strip()
        assert why.split()[0] in row["reason"]
