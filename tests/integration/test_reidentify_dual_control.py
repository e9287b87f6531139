"""Re-identification under dual control, on real PostgreSQL with real tokens of the embedded issuer.

Each attack is tried as an attacker would: a name typed on the command line, an owner answering
alone, an owner approving itself, another partner's owner approving, a forged or expired token,
and the vault's function called directly without an approval. Each is refused, answers nothing
and leaves an audit row naming who tried; break-glass answers at once and is flagged, logged and
counted, and stays listed until a second owner reviews it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from streams.metrics import REIDENTIFICATIONS
from streams.privacy.vault import Vault
from streams.privacy.vault_access import VaultAccess
from streams.rights.reidentify import ReidentificationRefused
from streams.settings import ROOT
from tests.support.reid import WHY, Identities, owners_of

TVP, SCHOOLS = "thames_valley_police", "reading_schools"
A, B = f"{TVP}.owner.a", f"{TVP}.owner.b"


@pytest.fixture
def ids(tmp_path: Path) -> Identities:
    return Identities(tmp_path, owners_of(TVP, SCHOOLS))


@pytest.fixture
def person(pg_dsn: str) -> str:
    """A linkage token the police sent a PNC id and a name for (and the schools a UPN)."""
    tok = f"k1.{uuid.uuid4().hex}"
    vault = Vault(pg_dsn)
    vault.record_many(
        [
            (TVP, tok, {"pnc_id": "19/0012345X", "family_name": "Smith"}, "ev-police"),
            (SCHOOLS, tok, {"upn": "A820200109001"}, "ev-school"),
        ]
    )
    vault.close()
    return tok


def _refused(call: object, *args: object) -> str:
    with pytest.raises(ReidentificationRefused) as exc:
        call(*args)  # type: ignore[operator]
    return exc.value.reason


def _last(pg_dsn: str, token: str) -> dict[str, object]:
    return VaultAccess(pg_dsn).audit_log(token)[-1]


def test_a_single_owner_gets_nothing_until_a_second_different_owner_approves(
    pg_dsn: str, ids: Identities, person: str
) -> None:
    service = ids.service(pg_dsn)
    request_id = service.request(ids.token(A), person, TVP, WHY)
    reason = _refused(service.answer, ids.token(A), request_id)
    assert "a second data owner has not approved it" in reason
    row = _last(pg_dsn, person)
    assert (row["outcome"], row["requester"], row["returned"]) == ("refused", A, 0)
    # The vault's own function refuses too, whatever the service in front of it says.
    with psycopg.connect(pg_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM reidentification_answer(%s, %s)", (request_id, A)).fetchall()
    # The second owner approves; the requester collects the police's identifiers, once.
    assert service.approve(ids.token(B), request_id) == "approved"
    found = service.answer(ids.token(A), request_id)
    assert {(i.kind, i.value) for i in found} == {("pnc_id", "19/0012345X"), ("family_name", "Smith")}
    assert "answered" in _refused(service.answer, ids.token(A), request_id)
    granted = [r for r in VaultAccess(pg_dsn).audit_log(person) if r["outcome"] == "granted"]
    assert [(r["requester"], r["approver"], r["returned"]) for r in granted] == [(A, B, 2)]


def test_the_approver_may_not_be_the_requester(pg_dsn: str, ids: Identities, person: str) -> None:
    service = ids.service(pg_dsn)
    request_id = service.request(ids.token(A), person, TVP, WHY)
    assert _refused(service.approve, ids.token(A), request_id) == "the approver must be another data owner"
    row = _last(pg_dsn, person)
    assert (row["outcome"], row["requester"], row["approver"]) == ("refused", A, A)
    assert "not approved" in _refused(service.answer, ids.token(A), request_id)
    # Nor can the table be made to say so: PostgreSQL refuses an approval by the requester.
    with psycopg.connect(pg_dsn) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "UPDATE reidentification_requests SET state = 'approved', approver = requester WHERE id = %s",
            (request_id,),
        )


def test_an_owner_of_another_partner_may_not_approve(pg_dsn: str, ids: Identities, person: str) -> None:
    service = ids.service(pg_dsn)
    request_id = service.request(ids.token(A), person, TVP, WHY)
    other = f"{SCHOOLS}.owner.a"
    reason = _refused(service.approve, ids.token(other), request_id)
    assert reason == f"{other} is not a data owner of {TVP} (rights-roles.yaml)"
    row = _last(pg_dsn, person)
    assert (row["outcome"], row["requester"], row["approver"], row["partner"]) == ("refused", A, other, TVP)
    # A schools owner whose token claims the police partner is still not on the police's list.
    reason = _refused(service.approve, ids.token(other, partner=TVP), request_id)
    assert "not a data owner" in reason
    assert "not approved" in _refused(service.answer, ids.token(A), request_id)


def test_self_declared_forged_and_expired_requesters_are_refused_and_audited(
    pg_dsn: str, ids: Identities, person: str, tmp_path: Path
) -> None:
    service = ids.service(pg_dsn)
    made_up = ids.token("made.up.person", partner=SCHOOLS)
    assert "made.up.person is not a data owner of reading_schools" in _refused(
        service.request, made_up, person, None, WHY
    )
    assert _refused(service.request, "", person, TVP, WHY) == "identity not verified (empty token)"
    assert _refused(service.request, "reading_schools:made.up.person", person, TVP, WHY) == (
        "identity not verified (malformed token)"
    )
    stranger = Identities(tmp_path / "other-issuer", owners_of(TVP))  # same names, another key
    assert "identity not verified" in _refused(service.request, stranger.token(A), person, TVP, WHY)
    expired = ids.token(A, ttl=-120)
    assert _refused(service.request, expired, person, TVP, WHY) == "identity not verified (token expired)"
    assert "acts for reading_schools" in _refused(
        service.request, ids.token(A, partner=SCHOOLS), person, TVP, WHY
    )
    assert "justification" in _refused(service.request, ids.token(A), person, TVP, "because")
    rows = VaultAccess(pg_dsn).audit_log(person)
    assert [r["outcome"] for r in rows] == ["refused"] * 7
    assert [r["requester"] for r in rows] == ["made.up.person", *["(unverified)"] * 4, A, A]
    with psycopg.connect(pg_dsn) as conn:
        opened = conn.execute("SELECT count(*) FROM reidentification_requests WHERE token = %s", (person,))
        assert opened.fetchone() == (0,)


def test_break_glass_answers_at_once_and_is_flagged_logged_counted_and_reviewed(
    pg_dsn: str, ids: Identities, person: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = ids.service(pg_dsn)
    before = REIDENTIFICATIONS.labels("break_glass")._value.get()
    with caplog.at_level(logging.WARNING, logger="sharingbus.rights.reidentify"):
        found = service.break_glass(ids.token(A), person, TVP, "Child missing, life at risk: locate now")
    assert {i.value for i in found} == {"19/0012345X", "Smith"}
    assert REIDENTIFICATIONS.labels("break_glass")._value.get() == before + 1
    (warning,) = [r for r in caplog.records if "BREAK-GLASS" in r.getMessage()]
    assert warning.levelno == logging.WARNING and A in warning.getMessage()
    row = _last(pg_dsn, person)
    assert (row["outcome"], row["requester"], row["approver"], row["returned"]) == ("break_glass", A, None, 2)
    assert "break-glass" in str(row["reason"])
    # Awaiting review by a second owner, who is shown it; the requester cannot review itself.
    (waiting,) = [w for w in service.pending(ids.token(B)) if w["token"] == person]
    assert waiting["break_glass"] and waiting["requester"] == A
    assert _refused(service.approve, ids.token(A), waiting["id"]) == "the approver must be another data owner"
    assert service.approve(ids.token(B), waiting["id"]) == "reviewed"
    assert [w for w in service.pending(ids.token(B)) if w["token"] == person] == []
    assert (_last(pg_dsn, person)["outcome"], _last(pg_dsn, person)["approver"]) == ("reviewed", B)
    # Break-glass is for data owners only.
    assert "not a data owner" in _refused(
        service.break_glass,
        ids.token("made.up.person"),
        person,
        TVP,
        "Child missing, life at risk: locate now",
    )


def test_a_declined_request_is_never_answered(pg_dsn: str, ids: Identities, person: str) -> None:
    service = ids.service(pg_dsn)
    request_id = service.request(ids.token(A), person, TVP, WHY)
    service.decline(ids.token(B), request_id, "no strategy meeting is booked")
    assert "declined" in _refused(service.answer, ids.token(A), request_id)
    assert "declined" in _refused(service.approve, ids.token(B), request_id)
    outcomes = [r["outcome"] for r in VaultAccess(pg_dsn).audit_log(person)]
    assert outcomes == ["requested", "declined", "refused", "refused"]


def _cli(
    ids: Identities, pg_dsn: str, token: str | None, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env |= {f"SHARINGBUS_{k.upper()}": v for k, v in settings.items()}
    env["SHARINGBUS_DATA_DIR"] = str(ids.settings.data_dir)
    env["SHARINGBUS_POSTGRES_DSN"] = pg_dsn
    if token is not None:
        env["SHARINGBUS_IDENTITY_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", "reidentify", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_cli_dual_control_with_the_shipped_roles_file(pg_dsn: str, ids: Identities, person: str) -> None:
    """No identity, no request; two owners of the shipped roles file get the answer, in three steps."""
    asked = _cli(
        ids, pg_dsn, None, "request", "--token", person, "--partner", SCHOOLS, "--justification", WHY
    )
    assert asked.returncode == 2 and asked.stdout == ""
    assert asked.stderr == "error: re-identification refused: identity not verified (empty token)\n"
    jones, khan = ids.token("tvp.dpo.jones"), ids.token("tvp.dpo.khan")
    asked = _cli(ids, pg_dsn, jones, "request", "--token", person, "--justification", WHY)
    assert asked.returncode == 0, asked.stderr
    request_id = asked.stdout.strip()
    early = _cli(ids, pg_dsn, jones, "answer", request_id)
    assert early.returncode == 2 and early.stdout == "" and len(early.stderr.splitlines()) == 1
    listed = [line for line in _cli(ids, pg_dsn, khan, "pending").stdout.splitlines() if person in line]
    assert listed == [f"{request_id}\tapproval\t{TVP}\ttvp.dpo.jones\t{person}\t{WHY}"]
    approved = _cli(ids, pg_dsn, khan, "approve", request_id)
    assert approved.returncode == 0 and approved.stdout == f"request {request_id}: approved\n"
    answered = _cli(ids, pg_dsn, jones, "answer", request_id)
    assert answered.returncode == 0, answered.stderr
    assert sorted(answered.stdout.splitlines()) == [
        "family_name\tSmith\tev-police",
        "pnc_id\t19/0012345X\tev-police",
    ]
    urgent = _cli(ids, pg_dsn, khan, "break-glass", "--token", person, "--justification", WHY)
    assert urgent.returncode == 0 and len(urgent.stdout.splitlines()) == 2, urgent.stderr
    assert "BREAK-GLASS re-identification: request " in urgent.stderr  # the alarm, on the CLI too
    lone = ids.settings.data_dir / "lone-owner.yaml"
    lone.write_text(f"partners:\n  {TVP}:\n    data_owners: [tvp.dpo.jones]\n")
    broken = _cli(ids, pg_dsn, jones, "answer", request_id, rights_roles_path=str(lone))
    assert (broken.returncode, broken.stdout) == (1, "")
    assert broken.stderr == (
        f"error: {lone}: partners.{TVP}.data_owners: dual control needs none or at least two data owners\n"
    )
    bad = _cli(ids, pg_dsn, jones, "answer", "not-a-number")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    missing = _cli(ids, pg_dsn, jones, "answer", "999999")
    assert missing.returncode == 2
    assert missing.stderr == "error: re-identification refused: no re-identification request 999999\n"
