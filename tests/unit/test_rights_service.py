"""The subject rights service with its PostgreSQL and broker look-ups faked: what a request plans,
what it refuses, that nothing is sent when planning fails, and that a re-run repeats itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.deadletter import Output
from streams.privacy.identifiers import upn_check_letter
from streams.privacy.keys import KeyRing
from streams.rights.context import Context
from streams.rights.links import LinkRow, subject_tokens
from streams.rights.model import HEADER_RETRACTS
from streams.rights.resolve import NOT_IN_LEDGER, NOT_OWNER
from streams.rights.restrictions import Restrictions
from streams.rights.service import SubjectRightsService
from streams.rights.store import Resolution

SCHOOLS, POLICE = "reading_schools", "thames_valley_police"
UPN = upn_check_letter("870000000001") + "870000000001"
E1, E2, POLICE1 = (str(uuid.UUID(int=n)) for n in (1, 2, 3))


class Store:
    def __init__(self) -> None:
        self.saved: dict[str, Resolution] = {}
        self.actions: list[tuple[str, ...]] = []
        self.restricted: dict[str, set[str]] = {}

    def load(self, request_id: str) -> Resolution | None:
        return self.saved.get(request_id)

    def save(self, res: Resolution) -> Resolution:
        res.seq = len(self.saved) + 1
        return self.saved.setdefault(res.request_id, res)

    def record_actions(self, rows: Iterable[tuple[str, ...]]) -> None:
        self.actions.extend(rows)

    def erased(self, event_ids: Iterable[str], seq: int) -> set[str]:
        return set()

    def restrict(self, partner: str, tokens: Sequence[str], request_id: str) -> None:
        self.restricted.setdefault(partner, set()).update(tokens)


class Ledger:
    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {}

    def add(self, event_id: str, partner: str, shared: Sequence[str], denied: Sequence[str] = ()) -> None:
        self.records[event_id] = [
            {
                "event_id": event_id,
                "source_partner": partner,
                "event_type": "education.exclusion",
                "recipient": r,
                "outcome": "shared" if r in shared else "denied",
                "output_topic": topics.shared(r, "education.exclusion") if r in shared else None,
                "output_key": f"key-{r}-{event_id}" if r in shared else None,
                "agreement_id": f"to-{r}",
            }
            for r in [*shared, *denied]
        ]

    def by_event(self, event_id: str) -> list[dict[str, Any]]:
        return self.records.get(event_id, [])


class Links:
    def __init__(self, rows: list[LinkRow]) -> None:
        self.rows = rows
        self.forgotten: list[tuple[str, list[str]]] = []
        self.broken = False

    def by_tokens(self, tokens: Sequence[str]) -> list[LinkRow]:
        persons = {r.person_token for r in self.rows if set(r.tokens) & set(tokens)}
        return [r for r in self.rows if r.person_token in persons]

    def by_events(self, event_ids: Sequence[str]) -> list[LinkRow]:
        return [r for r in self.rows if r.event_id in event_ids]

    def by_persons(self, persons: Sequence[str]) -> list[LinkRow]:
        if self.broken:
            raise ConnectionError("PostgreSQL went away")
        return [r for r in self.rows if r.person_token in persons]

    def forget_events(self, partner: str, event_ids: Iterable[str]) -> int:
        self.forgotten.append((partner, sorted(event_ids)))
        self.rows = [r for r in self.rows if r.event_id not in set(event_ids)]
        return 1


class Vault:
    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def forget(self, token: str, requester: str, justification: str) -> int:
        self.forgotten.append(token)
        return 1


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.generate()


def _service(keyring: KeyRing, ledger: Ledger, links: Links) -> tuple[SubjectRightsService, Store, Vault]:
    store, vault = Store(), Vault()
    ctx = Context(
        catalogue=load_catalogue(),
        keyring=keyring,
        linkage_kid=keyring.active_id,
        store=store,  # type: ignore[arg-type]
        ledger=ledger,  # type: ignore[arg-type]
        links=links,  # type: ignore[arg-type]
        vault=vault,  # type: ignore[arg-type]
        raw=None,  # type: ignore[arg-type]
        schemas=None,  # type: ignore[arg-type]
        restrictions=Restrictions(lambda: (0, {}), lambda: 0),
    )
    return SubjectRightsService(ctx, settle_seconds=0), store, vault


def _request(partner: str, kind: str = "ERASE", **fields: Any) -> dict[str, Any]:
    return {
        "envelope": {"event_id": str(uuid.uuid4())},
        "kind": kind,
        "event_ids": [],
        "subject": None,
        "corrections": {},
        "reason": "asked",
        "requester": f"{partner}:dpo",
    } | fields


def _run(
    service: SubjectRightsService, partner: str, event: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[Output]]:
    audit: list[dict[str, Any]] = []
    out: list[Output] = []
    service.handle_request(partner, event, None, lambda **f: audit.append(f), out)
    return audit, out


def test_erasure_retracts_from_every_recipient_and_forgets_a_person_wholly_erased(keyring: KeyRing) -> None:
    ledger = Ledger()
    ledger.add(E1, SCHOOLS, shared=["vru_analysts", "reading_yjs_team"], denied=["reading_csp"])
    ledger.add(E2, SCHOOLS, shared=["vru_analysts"])
    links = Links([LinkRow(E1, 0, "p.tom", ("t1",)), LinkRow(E2, 0, "p.tom", ("t1",))])
    service, store, vault = _service(keyring, ledger, links)
    audit, out = _run(service, SCHOOLS, _request(SCHOOLS, event_ids=[E1, E2]))

    tombstones = {(o.topic, o.key, dict(o.headers or [])[HEADER_RETRACTS]) for o in out if o.value is None}
    assert tombstones == {
        (
            topics.shared("vru_analysts", "education.exclusion"),
            f"key-vru_analysts-{E1}".encode(),
            E1.encode(),
        ),
        (
            topics.shared("reading_yjs_team", "education.exclusion"),
            f"key-reading_yjs_team-{E1}".encode(),
            E1.encode(),
        ),
        (
            topics.shared("vru_analysts", "education.exclusion"),
            f"key-vru_analysts-{E2}".encode(),
            E2.encode(),
        ),
    }  # the denied recipient received nothing, so it gets nothing
    assert [o.key for o in out if o.topic == topics.LINK_PERSON] == [b"p.tom"]
    assert [o.key for o in out if o.topic == topics.LINK_IDENTIFIERS] == [
        b"forget:" + audit[0]["request_id"].encode()
    ]
    assert vault.forgotten == ["p.tom"] and links.forgotten == [(SCHOOLS, [E1, E2])]
    assert audit[-1]["action"] == "request" and audit[-1]["outcome"] == "applied"
    assert {a["kind"] for a in audit} == {"request"}
    assert len(store.actions) == len(audit)


def test_a_person_other_controllers_hold_records_about_keeps_them(keyring: KeyRing) -> None:
    ledger = Ledger()
    ledger.add(E1, SCHOOLS, shared=["vru_analysts"])
    ledger.add(POLICE1, POLICE, shared=["vru_analysts"])
    tokens = subject_tokens({"upn": UPN}, SCHOOLS, keyring, keyring.active_id)
    links = Links([LinkRow(E1, 0, "p.sam", tuple(tokens)), LinkRow(POLICE1, 0, "p.sam", ("t-police",))])
    service, _, vault = _service(keyring, ledger, links)
    audit, out = _run(service, SCHOOLS, _request(SCHOOLS, subject={"upn": UPN}))

    assert {o.key for o in out if o.value is None} == {
        f"key-vru_analysts-{E1}".encode()
    }  # never the police's
    assert vault.forgotten == [] and links.forgotten == [(SCHOOLS, [E1])]
    assert not [o for o in out if o.topic == topics.LINK_IDENTIFIERS]
    assert audit[-1]["other_controllers"] == 1 and audit[-1]["event_ids"] == [E1]


def test_events_the_partner_does_not_own_are_refused_and_nothing_is_sent(keyring: KeyRing) -> None:
    ledger = Ledger()
    ledger.add(E1, SCHOOLS, shared=["vru_analysts"])
    service, _, vault = _service(keyring, ledger, Links([]))
    audit, out = _run(service, POLICE, _request(POLICE, event_ids=[E1, str(uuid.UUID(int=7))]))
    assert out == [] and vault.forgotten == []
    refusals = {(a["event_id"], a["outcome"], a["reason"]) for a in audit if a["action"] == "refuse"}
    assert refusals == {(E1, "denied", NOT_OWNER), (str(uuid.UUID(int=7)), "denied", NOT_IN_LEDGER)}
    assert audit[-1]["outcome"] == "denied"


def test_a_malformed_request_is_refused_in_one_audit_record(keyring: KeyRing) -> None:
    service, store, _ = _service(keyring, Ledger(), Links([]))
    audit, out = _run(service, SCHOOLS, _request(SCHOOLS, requester="someone"))
    assert out == [] and store.saved == {}
    assert [(a["action"], a["outcome"]) for a in audit] == [("request", "denied")]


def test_a_failure_while_planning_sends_nothing_and_changes_nothing(keyring: KeyRing) -> None:
    ledger = Ledger()
    ledger.add(E1, SCHOOLS, shared=["vru_analysts"])
    links = Links([LinkRow(E1, 0, "p.tom", ("t1",))])
    links.broken = True
    service, _, vault = _service(keyring, ledger, links)
    audit: list[dict[str, Any]] = []
    out: list[Output] = []
    with pytest.raises(ConnectionError):
        service.handle_request(
            SCHOOLS, _request(SCHOOLS, event_ids=[E1]), None, lambda **f: audit.append(f), out
        )
    assert out == [] and vault.forgotten == [] and links.forgotten == []
    assert [(a["action"], a["outcome"]) for a in audit] == [("request", "error")]


def test_a_rerun_plans_the_same_steps_from_the_stored_resolution(keyring: KeyRing) -> None:
    ledger = Ledger()
    ledger.add(E1, SCHOOLS, shared=["vru_analysts"])
    links = Links([LinkRow(E1, 0, "p.tom", ("t1",))])
    service, _, _ = _service(keyring, ledger, links)
    event = _request(SCHOOLS, event_ids=[E1])
    first_audit, first = _run(service, SCHOOLS, event)
    assert links.rows == []  # the first run erased the links it was resolved from
    again_audit, again = _run(service, SCHOOLS, event)
    assert [(o.topic, o.key, o.value) for o in again] == [(o.topic, o.key, o.value) for o in first]
    assert [a["action"] for a in again_audit] == [a["action"] for a in first_audit]


def test_a_restricted_subjects_new_events_are_held_back_for_that_controller_only(keyring: KeyRing) -> None:
    service, store, _ = _service(keyring, Ledger(), Links([]))
    audit, _ = _run(service, SCHOOLS, _request(SCHOOLS, "RESTRICT", subject={"upn": UPN}))
    assert [a["outcome"] for a in audit if a["action"] == "restrict"] == ["applied"]
    assert store.restricted[SCHOOLS]
    event = {"subject": {"upn": UPN}}
    reason = service.restriction(SCHOOLS, "education.exclusion", event)
    assert reason is not None and audit[0]["request_id"] in reason
    assert service.restriction(POLICE, "police.stop_search", event) is None
    other = upn_check_letter("870000000002") + "870000000002"
    assert service.restriction(SCHOOLS, "education.exclusion", {"subject": {"upn": other}}) is None
    assert service.restriction(SCHOOLS, "education.exclusion", {"people": [{"subject": {"upn": UPN}}]})
