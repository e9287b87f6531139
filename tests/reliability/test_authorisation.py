"""Authorisation end to end: who may say what, who receives what, who may re-identify whom.

- A partner cannot speak for another: an event on partner A's raw topic whose envelope claims
  partner B is dead-lettered (`spoofed_partner`) and reaches nobody: no decision, no shared record,
  whichever way round (here: a school without an agreement claiming to be the one that has one).
- A recipient with no agreement receives nothing: no shared topic for it has a record, and the
  ledger shows the default denial, naming it, for every event.
- Re-identification (`sharebus reidentify`, real subprocesses over the vault the enforcer filled)
  answers only a verified data owner of the owning partner (rights-roles.yaml) whose request a
  second, different owner of that partner approved; a typed requester, an unlisted identity,
  another partner's owner, a short justification, an unapproved or self-approved request are
  refused, print nothing identifying, and are audited (`reidentification_audit`) like every step.
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
from streams.avro.serde import SchemaCache, encode
from streams.publish.publisher import prepare_event
from streams.publish.simulate import Simulation
from streams.registry.client import registry_client
from streams.settings import ROOT
from tests.support.reid import as_caller
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
    sharebus,
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
    schemas = SchemaCache(registry_client(settings))
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
# Identities of the shipped rights-roles.yaml: two police data owners, and one of the schools.
JONES, KHAN, SMITH = "tvp.dpo.jones", "tvp.dpo.khan", "schools.dpo.smith"


def _audit_rows(dsn: str) -> list[dict[str, Any]]:
    rows = query(
        dsn,
        "SELECT requester, approver, partner, token, justification, outcome, reason, returned "
        "FROM reidentification_audit ORDER BY id",
    )
    names = ("requester", "approver", "partner", "token", "justification", "outcome", "reason", "returned")
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_reidentification_needs_two_verified_owners_of_the_partner_and_is_always_audited(
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
    by_person: dict[str, set[str]] = {}
    for t, p, v in rows:
        if p == OWNER:
            by_person.setdefault(t, set()).add(v)
    token = max(by_person, key=lambda t: (len(by_person[t]), t))
    owner_values = by_person[token]

    def ask(subject: str | None, *args: str) -> tuple[int, str, str]:
        caller = stack.settings if subject is None else as_caller(stack.settings, subject)
        result = sharebus(caller, "reidentify", *args, timeout=60)
        return result.returncode, result.stdout, result.stderr

    # The attack on a bus without dual control: a typed requester. Refused; nothing identifying.
    attacks = [
        (
            None,
            ("--token", token, "--requester", f"{OWNER}:made.up.person", "--justification", JUSTIFICATION),
        ),
        (None, ("break-glass", "--token", token, "--partner", OWNER, "--justification", JUSTIFICATION)),
        (
            "made.up.person",
            ("break-glass", "--token", token, "--partner", OWNER, "--justification", JUSTIFICATION),
        ),
        (SMITH, ("request", "--token", token, "--partner", OWNER, "--justification", JUSTIFICATION)),
        (JONES, ("request", "--token", token, "--justification", "because")),
    ]
    with ThreadPoolExecutor(len(attacks)) as pool:  # independent requests: asked at once
        answers = list(pool.map(lambda a: ask(a[0], *a[1]), attacks))
    for (who, args), (code, out, err) in zip(attacks, answers, strict=True):
        assert code == 2, (who, args, err)
        assert not any(v in out + err for v in owner_values), "a refusal printed an identifier"

    # One owner asks; alone it gets nothing, nor by approving itself; a second owner approves.
    code, out, err = ask(JONES, "request", "--token", token, "--justification", JUSTIFICATION)
    assert code == 0, err
    request_id = out.strip()
    for who, args in (
        (JONES, ("answer", request_id)),
        (JONES, ("approve", request_id)),
        (SMITH, ("approve", request_id)),
    ):
        code, out, err = ask(who, *args)
        assert code == 2 and out == "" and "refused" in err, (who, args, err)
    assert ask(KHAN, "approve", request_id)[0] == 0
    code, out, err = ask(JONES, "answer", request_id, "--json")
    assert code == 0, err
    returned = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert returned and {r["value"] for r in returned} == owner_values  # the police's own, all of them

    # Every step is in the audit, with both identities where there are two.
    audit = _audit_rows(settings.postgres_dsn)
    steps = [(a["outcome"], a["requester"], a["approver"]) for a in audit if a["outcome"] != "refused"]
    assert steps == [("requested", JONES, None), ("approved", JONES, KHAN), ("granted", JONES, KHAN)]
    refusals = [a for a in audit if a["outcome"] == "refused"]
    assert len(refusals) == len(attacks) - 1 + 3  # the typed --requester never reached the vault
    assert all(a["returned"] == 0 and a["token"] == token for a in audit if a["outcome"] != "granted")
    assert {(a["requester"], a["approver"]) for a in refusals[-3:]} == {
        (JONES, None),
        (JONES, JONES),
        (JONES, SMITH),
    }
    granted = audit[-1]
    assert granted["returned"] == len(returned) and granted["justification"] == JUSTIFICATION
