"""Only the roles that tokenise load the master keys (issue 16, "Keys per domain").

The views and API role is the one analysts' requests reach; it must start and serve with no key
file and no key variables at all. The proof that it never even reads a key source: it starts with
`SHARINGBUS_KEYS` set to something unparsable, which any key loading would refuse at start.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import SecretStr

from streams.settings import ROOT, Settings
from tests.workers import discard, start_worker


def test_a_views_only_worker_starts_and_serves_without_any_key(
    stack_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    absent = tmp_path / "no-such-keyring.json"
    settings = stack_factory().model_copy(
        update={"roles": "views", "keyring_path": absent, "keys": SecretStr("not a key spec")}
    )
    worker = start_worker(settings, tmp_path, name="views")
    try:
        assert httpx.get(f"{worker.url}/health", timeout=10.0).status_code == 200
        assert httpx.get(f"{worker.url}/ready", headers=worker.ops, timeout=10.0).status_code == 200
        api = httpx.get(f"{worker.url}/api/health", headers=worker.analyst, timeout=10.0)
        assert api.status_code == 200  # the views' API
        assert not absent.exists()
        assert worker.proc.poll() is None
    finally:
        discard(worker)


def test_an_enforcer_without_keys_refuses_to_start_in_one_line(
    stack_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = stack_factory().model_copy(
        update={"roles": "enforcer", "keyring_path": tmp_path / "no-such-keyring.json"}
    )
    env = {k: v for k, v in settings.to_env().items()}
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run(
        [sys.executable, "-m", "sharebus.main", "worker"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'no-such-keyring.json'}: key ring file not found "
        "(create one with `sharebus keys rotate`)"
    ]
