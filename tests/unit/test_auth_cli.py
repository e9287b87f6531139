"""`sharebus auth token`: the token alone on the last line, or one error line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.identity import Principal, TokenVerifier
from streams.settings import Settings


def _sharebus(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env["SHARINGBUS_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", "auth", "token", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_prints_a_token_the_bus_accepts(tmp_path: Path) -> None:
    done = _sharebus(
        tmp_path, "--recipient", "vru_analysts", "--tier", "individual", "--subject", "ana", "--role", "ops"
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    principal = TokenVerifier.from_settings(Settings(data_dir=tmp_path)).verify(token)
    assert principal == Principal("ana", "vru_analysts", "individual", None, frozenset({"ops"}))


def test_refuses_a_tier_above_the_recipients_cap_in_one_line(tmp_path: Path) -> None:
    done = _sharebus(tmp_path, "--recipient", "public_open_data", "--tier", "individual")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "error: tier individual exceeds recipient public_open_data's cap (aggregate)\n"
    done = _sharebus(tmp_path, "--recipient", "nobody_at_all", "--tier", "area")
    assert done.returncode == 1 and done.stderr == "error: unknown recipient 'nobody_at_all'\n"
