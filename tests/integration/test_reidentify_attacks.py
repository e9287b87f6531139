"""The attacks on re-identification as typed on a bus without dual control, against the real CLI.

Only what any version of the bus has is used here (the vault's writer and the command line), so
these show the attack itself: a requester typed as `<partner>:<anyone>` with any justification of
20 characters, with or without a token of the embedded issuer for an identity no roles file lists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from streams.identity import LocalIssuer
from streams.privacy.vault import Vault
from streams.settings import ROOT, Settings

WHY = "Safeguarding referral 2026/0142: confirm identity before strategy meeting"
SCHOOLS = "reading_schools"
UPN, NAME = "A820200109001", "Featherstonehaugh"


def test_a_typed_requester_gets_nothing_from_the_vault(tmp_path: Path, pg_dsn: str) -> None:
    tok = f"k1.{uuid.uuid4().hex}"
    vault = Vault(pg_dsn)
    vault.record_many([(SCHOOLS, tok, {"upn": UPN, "family_name": NAME}, "ev-school")])
    vault.close()
    made_up = LocalIssuer.from_settings(Settings(data_dir=tmp_path)).mint("made.up.person", partner=SCHOOLS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env |= {"SHARINGBUS_DATA_DIR": str(tmp_path), "SHARINGBUS_POSTGRES_DSN": pg_dsn}
    typed = ["--token", tok, "--requester", f"{SCHOOLS}:made.up.person", "--justification", WHY]
    attempts = [
        (env, ["reidentify", *typed]),
        (env | {"SHARINGBUS_IDENTITY_TOKEN": made_up}, ["reidentify", *typed]),
        (env | {"SHARINGBUS_IDENTITY_TOKEN": made_up}, ["reidentify", "break-glass", *typed[:2], *typed[4:]]),
        (env | {"SHARINGBUS_IDENTITY_TOKEN": made_up}, ["reidentify", "request", *typed[:2], *typed[4:]]),
    ]
    for environment, args in attempts:
        done = subprocess.run(
            [sys.executable, "-m", "sharebus.main", *args],
            capture_output=True,
            text=True,
            env=environment,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert UPN not in done.stdout + done.stderr and NAME not in done.stdout + done.stderr, args
