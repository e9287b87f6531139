"""The vault on real PostgreSQL: owners see their own identifiers only, and every request is audited."""

from __future__ import annotations

import uuid

import pytest

from streams.privacy.vault import MIN_JUSTIFICATION, ReidentificationRefused, Vault

WHY = "Safeguarding referral 2026/0142: confirm identity before strategy meeting"


@pytest.fixture
def vault(pg_dsn: str) -> Vault:
    return Vault(pg_dsn)


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


def test_owner_gets_only_its_own_identifiers(vault: Vault, person: dict[str, str]) -> None:
    found = vault.reidentify(person["new"], "tvp:dpo.jones", "tvp", WHY)
    assert {(i.kind, i.value) for i in found} == {("pnc_id", "19/0012345X"), ("family_name", "Smith")}
    assert {i.event_id for i in found} == {person["ev1"], person["ev3"]}
    school = vault.reidentify(person["new"], "schools:dpo", None, WHY)
    assert [(i.kind, i.value) for i in school] == [("family_name", "Smith"), ("upn", "A820200109001")]


def test_a_merged_away_person_token_still_resolves(vault: Vault, person: dict[str, str]) -> None:
    assert len(vault.reidentify(person["old"], "tvp:dpo.jones", "tvp", WHY)) == 3


def test_identifier_token_resolves_directly(vault: Vault, person: dict[str, str]) -> None:
    assert len(vault.reidentify(person["police_tok"], "tvp:dpo", "tvp", WHY)) == 3


@pytest.mark.parametrize(
    ("requester", "partner", "justification", "reason"),
    [
        ("schools:dpo", "tvp", WHY, "requester is not a data owner of the partner"),
        ("dpo.jones", "tvp", WHY, "requester must be '<partner>:<person>'"),
        ("tvp:dpo", "tvp", "", f"justification shorter than {MIN_JUSTIFICATION} characters"),
        ("tvp:dpo", "tvp", "because", f"justification shorter than {MIN_JUSTIFICATION} characters"),
    ],
)
def test_refusals_are_audited(
    vault: Vault, person: dict[str, str], requester: str, partner: str, justification: str, reason: str
) -> None:
    with pytest.raises(ReidentificationRefused) as exc:
        vault.reidentify(person["new"], requester, partner, justification)
    assert exc.value.reason == reason
    (row,) = vault.audit_log(person["new"])
    assert (row["requester"], row["outcome"], row["reason"], row["returned"]) == (
        requester,
        "refused",
        reason,
        0,
    )


def test_every_request_is_audited(vault: Vault, person: dict[str, str]) -> None:
    vault.reidentify(person["new"], "tvp:dpo", "tvp", WHY)
    vault.reidentify(person["new"], "housing:dpo", None, WHY)
    with pytest.raises(ReidentificationRefused):
        vault.reidentify(person["new"], "housing:dpo", "tvp", WHY)
    rows = vault.audit_log(person["new"])
    assert [(r["requester"], r["partner"], r["outcome"]) for r in rows] == [
        ("tvp:dpo", "tvp", "granted"),
        ("housing:dpo", "housing", "not_found"),
        ("housing:dpo", "tvp", "refused"),
    ]
    assert all(r["justification"] in (WHY,) and r["at"] is not None for r in rows)


def test_recording_is_idempotent(vault: Vault) -> None:
    tok = f"k1.{uuid.uuid4().hex}"
    assert vault.record("tvp", tok, {"pnc_id": "x", "postcode": " "}, "e1") == 1
    assert vault.record("tvp", tok, {"pnc_id": "x"}, "e1") == 0


def test_values_come_back_exactly_as_sent_through_the_copy_text_format(vault: Vault) -> None:
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
    found = vault.reidentify(tok, "tvp:dpo", "tvp", WHY)
    assert {i.kind: i.value for i in found} == {**awkward, "local_id": "ab"}
    assert {i.event_id for i in found} == {event}


def test_forget_erases_the_person_and_is_audited(vault: Vault, person: dict[str, str]) -> None:
    assert vault.forget(person["old"]) > 0
    assert vault.reidentify(person["new"], "tvp:dpo", "tvp", WHY) == []
    assert [r["outcome"] for r in vault.audit_log(person["old"])] == ["erased"]


def test_cli_prints_own_identifiers_and_refuses_without_justification(
    pg_dsn: str, vault: Vault, person: dict[str, str]
) -> None:
    from typer.testing import CliRunner

    from sharebus.main import app

    base = ["reidentify", "--token", person["new"], "--requester", "tvp:dpo", "--dsn", pg_dsn]
    ok = CliRunner().invoke(app, [*base, "--justification", WHY])
    assert ok.exit_code == 0, ok.output
    assert "pnc_id\t19/0012345X\t" in ok.stdout and "upn" not in ok.stdout
    refused = CliRunner().invoke(app, [*base, "--justification", "because"])
    assert refused.exit_code == 2 and "refused" in refused.output
