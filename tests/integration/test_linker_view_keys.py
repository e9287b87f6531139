"""A linker holding only the derived person-view keys feeds the person view, as compose runs it.

Compose's `linker` service has no key ring: `init` writes the `recipient:<id>` domain keys
(`sharebus keys derive-views`) and the linker reads them from `SHARINGBUS_VIEW_KEYS_PATH`. Here the
enforcer and views run in one worker with the key ring, and the linker in another whose key ring
path names no file, so a master key could not be loaded even by mistake.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from streams.linkage.view_tokens import ViewTokens
from streams.privacy.domain_keys import DomainKeys
from streams.privacy.keys import KeyRing
from streams.settings import ROOT, Settings
from tests.integration.test_combination_e2e import ALLOWED, _person, _publish, wait_for
from tests.workers import discard, start_worker


def test_a_linker_with_derived_view_keys_alone_feeds_the_person_view(
    stack_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    settings = stack_factory(agreements_dir=agreements)
    ring = KeyRing.load_or_create(settings.keyring_path)
    view_keys = tmp_path / "view-keys" / "view-keys.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    derived = subprocess.run(
        [sys.executable, "-m", "sharebus.main", "keys", "derive-views", "--out", str(view_keys)],
        env={**env, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert derived.returncode == 0, derived.stderr
    assert (view_keys.stat().st_mode & 0o777) == 0o600
    assert DomainKeys.load(view_keys).kids == [ring.ids[0]]

    keyed = settings.model_copy(update={"roles": "enforcer,audit,views"})
    keyless = settings.model_copy(
        update={"roles": "linker", "view_keys_path": view_keys, "keyring_path": tmp_path / "no-master.json"}
    )
    workers = [
        start_worker(keyed, tmp_path / "logs", name="keyed"),
        start_worker(keyless, tmp_path / "logs", name="linker"),
    ]
    try:
        worker = workers[0]
        ids = _publish(settings)
        person = wait_for(lambda: _person(settings, ids[1]), "the robbery to be linked")
        vru = ViewTokens(ring, ring.ids[0]).token("vru_analysts", person)

        def profile() -> dict[str, Any] | None:
            resp = httpx.get(f"{worker.url}/api/persons/{vru}", headers=worker.analyst, timeout=5)
            body: dict[str, Any] | None = resp.json() if resp.status_code == 200 else None
            return body if body and set(body["factors"]) == ALLOWED else None

        wait_for(profile, "the VRU's profile made by the keyless linker")
        assert not keyless.keyring_path.exists()
        assert "feeds no person view" not in workers[1].log()
    finally:
        discard(*workers)
