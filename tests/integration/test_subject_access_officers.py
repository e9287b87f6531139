"""`sharebus subject-access` answers only a verified officer of the controller (rights-roles.yaml).

Real subprocesses, real tokens of the embedded issuer (key in the test's data directory), real
PostgreSQL for the one caller who is answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.identity import LocalIssuer
from streams.privacy.keys import KeyRing
from streams.rights.access_audit import AccessAudit
from streams.settings import ROOT, Settings

SCHOOLS, POLICE = "reading_schools", "thames_valley_police"
UPN = "A820200109001"
REFUSED, FILE = "subject access refused: ", "(rights-roles.yaml)"


@pytest.fixture(autouse=True)
def keyring(tmp_path: Path) -> None:
    """A key ring in place, so nothing but the caller decides whether the report is made."""
    KeyRing.generate().save(tmp_path / "keyring.json")


def _run(data_dir: Path, pg_dsn: str, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env |= {
        "SHARINGBUS_DATA_DIR": str(data_dir),
        "SHARINGBUS_POSTGRES_DSN": pg_dsn,
        "SHARINGBUS_KEYRING_PATH": str(data_dir / "keyring.json"),
    }
    if token is not None:
        env["SHARINGBUS_IDENTITY_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", "subject-access", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("subject", "partner", "why"),
    [
        (None, None, "subject access refused: empty token: set SHARINGBUS_IDENTITY_TOKEN to your token"),
        ("schools.dpo.smith", None, f"{REFUSED}schools.dpo.smith is not an officer of {SCHOOLS} {FILE}"),
        ("tvp.sar.officer", None, f"{REFUSED}tvp.sar.officer is not an officer of {SCHOOLS} {FILE}"),
        ("made.up.person", SCHOOLS, f"{REFUSED}made.up.person is not an officer of {SCHOOLS} {FILE}"),
        ("schools.sar.officer", POLICE, f"{REFUSED}schools.sar.officer acts for {POLICE}, not {SCHOOLS}"),
    ],
)
def test_anyone_but_an_officer_of_that_controller_is_refused_in_one_line(
    tmp_path: Path, pg_dsn: str, subject: str | None, partner: str | None, why: str
) -> None:
    issuer = LocalIssuer.from_settings(Settings(data_dir=tmp_path))
    token = None if subject is None else issuer.mint(subject, partner=partner)
    done = _run(tmp_path, pg_dsn, token, "--partner", SCHOOLS, "--identifier", f"upn={UPN}")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [f"error: {why}"]


def test_an_officer_is_answered_for_its_own_controller(tmp_path: Path, pg_dsn: str) -> None:
    token = LocalIssuer.from_settings(Settings(data_dir=tmp_path)).mint("schools.sar.officer")
    done = _run(tmp_path, pg_dsn, token, "--identifier", f"upn={UPN}")  # its only controller
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["controller"]["id"] == SCHOOLS and report["found"] is False
    assert report["sharings"] == [] and "other_controllers" not in report


def test_every_answer_and_every_refusal_leaves_an_audit_row(tmp_path: Path, pg_dsn: str) -> None:
    audit = AccessAudit(pg_dsn)
    before = max((r["id"] for r in audit.log()), default=0)
    issuer = LocalIssuer.from_settings(Settings(data_dir=tmp_path))
    ask = ("--partner", SCHOOLS, "--identifier", f"upn={UPN}")
    refused = _run(tmp_path, pg_dsn, issuer.mint("tvp.sar.officer"), *ask)
    unverified = _run(tmp_path, pg_dsn, None, *ask)
    answered = _run(tmp_path, pg_dsn, issuer.mint("schools.sar.officer"), "--identifier", f"upn={UPN}")
    assert (refused.returncode, unverified.returncode, answered.returncode) == (2, 2, 0), answered.stderr
    not_officer, hint = (
        f"is not an officer of {SCHOOLS} {FILE}",
        "set SHARINGBUS_IDENTITY_TOKEN to your token",
    )
    rows = [r for r in audit.log() if r["id"] > before]
    fields = ("requester", "partner", "searched_by", "outcome", "reason", "sharings")
    assert [tuple(r[f] for f in fields) for r in rows] == [
        ("tvp.sar.officer", SCHOOLS, ["upn"], "refused", f"tvp.sar.officer {not_officer}", 0),
        ("(unverified)", SCHOOLS, ["upn"], "refused", f"empty token: {hint}", 0),
        ("schools.sar.officer", SCHOOLS, ["upn"], "answered", f"answered to an officer of {SCHOOLS}", 0),
    ]  # fmt: skip
    assert all(r["at"] is not None for r in rows)
    assert UPN not in repr(rows), "the audit names identifier kinds, never their values"
