"""The vault on real PostgreSQL: owners see their own identifiers only, through dual control."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.privacy.vault import Vault
from streams.privacy.vault_access import VaultAccess
from tests.support.reid import WHY, Identities, owners_of


@pytest.fixture
def vault(pg_dsn: str) -> Vault:
    return Vault(pg_dsn)


@pytest.fixture
def ids(tmp_path: Path) -> Identities:
    return Identities(tmp_path, owners_of("tvp", "schools", "housing"))


@pytest.fixture
def person(vault: Vault) -> dict[str, str]:
    """One person known to police and to schools, linked into a person token, with a later merge."""
    u = uuid.uuid4().hex[:12]
    police_tok, school_tok, ev1, ev2, ev3 = (f"k1.{u}{x}" for x in "abcde")
    old, new = f"p.old{u}", f"p.new{u}"
    vault.record_many(
        [
            ("tvp", police_tok, {"pnc_id": "19/0012345X", "family_name": "Smith", "given_name": None}, ev1),
            ("schools", school_tok, {"upn": "A820200109001", "family_name": "Smith"}, ev2),
            ("tvp", police_tok, {"pnc_id": "19/0012345X"}, ev3),
        ]
    )
    vault.link_many(
        [(ev1, 0, old, [police_tok, "k1.nd"]), (ev2, 0, new, [school_tok]), (ev3, 0, old, [police_tok])]
    )
    vault.merge_many([(old, new)])
    return {"old": old, "new": new, "police_tok": police_tok, "ev1": ev1, "ev3": ev3}


def test_owner_gets_only_its_own_identifiers(pg_dsn: str, ids: Identities, person: dict[str, str]) -> None:
    found = ids.reidentify(pg_dsn, person["new"], "tvp")
    assert {(i.kind, i.value) for i in found} == {("pnc_id", "19/0012345X"), ("family_name", "Smith")}
    assert {i.event_id for i in found} == {person["ev1"], person["ev3"]}
    school = ids.reidentify(pg_dsn, person["new"], "schools")
    assert [(i.kind, i.value) for i in school] == [("family_name", "Smith"), ("upn", "A820200109001")]


def test_a_merged_away_person_token_still_resolves(
    pg_dsn: str, ids: Identities, person: dict[str, str]
) -> None:
    assert len(ids.reidentify(pg_dsn, person["old"], "tvp")) == 3


def test_identifier_token_resolves_directly(pg_dsn: str, ids: Identities, person: dict[str, str]) -> None:
    assert len(ids.reidentify(pg_dsn, person["police_tok"], "tvp")) == 3


def test_every_answer_is_audited_with_both_identities(
    pg_dsn: str, ids: Identities, person: dict[str, str]
) -> None:
    ids.reidentify(pg_dsn, person["new"], "tvp")
    ids.reidentify(pg_dsn, person["new"], "housing")
    rows = VaultAccess(pg_dsn).audit_log(person["new"])
    assert [(r["requester"], r["approver"], r["partner"], r["outcome"]) for r in rows] == [
        ("tvp.owner.a", None, "tvp", "requested"),
        ("tvp.owner.a", "tvp.owner.b", "tvp", "approved"),
        ("tvp.owner.a", "tvp.owner.b", "tvp", "granted"),
        ("housing.owner.a", None, "housing", "requested"),
        ("housing.owner.a", "housing.owner.b", "housing", "approved"),
        ("housing.owner.a", "housing.owner.b", "housing", "not_found"),
    ]
    assert rows[2]["returned"] == 3 and rows[5]["returned"] == 0
    assert all(r["justification"] == WHY and r["at"] is not None for r in rows)
    assert len({r["request_id"] for r in rows}) == 2


def test_recording_is_idempotent(vault: Vault) -> None:
    tok = f"k1.{uuid.uuid4().hex}"
    assert vault.record("tvp", tok, {"pnc_id": "x", "postcode": " "}, "e1") == 1
    assert vault.record("tvp", tok, {"pnc_id": "x"}, "e1") == 0


def test_values_come_back_exactly_as_sent_through_the_copy_text_format(
    pg_dsn: str, ids: Identities, vault: Vault
) -> None:
    """COPY's text format escapes backslash, tab, newline and CR; a NUL (which PostgreSQL text
    cannot hold) is dropped, as before."""
    tok = f"k1.{uuid.uuid4().hex}"
    awkward = {
        "family_name": "O\\Brien\tJr\nthe \\N second\r",
        "given_name": "Zoë \\.",
        "local_id": "a\x00b",
    }
    event = f"e-{uuid.uuid4().hex}"
    assert vault.record("tvp", tok, awkward, event) == 3
    found = ids.reidentify(pg_dsn, tok, "tvp")
    assert {i.kind: i.value for i in found} == {**awkward, "local_id": "ab"}
    assert {i.event_id for i in found} == {event}


def test_forget_erases_the_person_and_is_audited(
    pg_dsn: str, ids: Identities, vault: Vault, person: dict[str, str]
) -> None:
    assert vault.forget(person["old"]) == 3 + 1 + 5  # links, the alias, identifiers (counted unread)
    assert ids.reidentify(pg_dsn, person["new"], "tvp") == []
    assert [r["outcome"] for r in VaultAccess(pg_dsn).audit_log(person["old"])] == ["erased"]
