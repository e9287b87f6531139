"""Two recipients with a person view, one worker: each recipient's token reaches its own view only.

The shipped agreements plus a person view for the YJS (its schools' exclusions). One child is seen
by five partners; the VRU's view takes the violent crime and the social-care factors, the YJS's the
exclusion. Tried as each recipient would: the other's person token, the bus's internal `p.` token,
the cohort ranking and the health page's count of profiles. Profiles of both views share one
table, so anything not filtered by the caller's verified recipient answers about the other's.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.linkage.view_tokens import ViewTokens
from streams.privacy.keys import KeyRing
from streams.settings import ROOT, Settings
from tests.integration.test_combination_e2e import ALLOWED, _person, _publish, wait_for
from tests.workers import WorkerProcess, bearer, discard, start_worker

YJS = "reading_yjs_team"
YJS_VIEW = "\nviews:\n  person_profile:\n    event_types:\n      education.exclusion:\n"


@pytest.fixture
def stack(stack_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[Settings, WorkerProcess]]:
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    with (agreements / "education-yjs.yaml").open("a", encoding="utf-8") as f:
        f.write(YJS_VIEW)
    settings = stack_factory(agreements_dir=agreements)
    worker = start_worker(settings, tmp_path / "logs")
    try:
        yield settings, worker
    finally:
        discard(worker)


def test_a_recipient_sees_only_its_own_view_by_token_and_in_the_cohort(
    stack: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = stack
    ids = _publish(settings)
    person = wait_for(lambda: _person(settings, ids[1]), "the robbery to be linked")
    keyring = KeyRing.load(settings.keyring_path)
    tokens = ViewTokens(keyring, settings.linkage_key_id or keyring.ids[0])
    vru, yjs = tokens.token("vru_analysts", person), tokens.token(YJS, person)
    as_vru, as_yjs = worker.analyst, bearer(settings, recipient=YJS, tier="individual")

    def get(path: str, who: dict[str, str]) -> httpx.Response:
        return httpx.get(f"{worker.url}{path}", headers=who, timeout=5)

    def profile_of(token: str, who: dict[str, str], factors: set[str]) -> dict[str, Any] | None:
        resp = get(f"/api/persons/{token}", who)
        body: dict[str, Any] | None = resp.json() if resp.status_code == 200 else None
        return body if body and set(body["factors"]) == factors else None

    wait_for(lambda: profile_of(vru, as_vru, ALLOWED), "the VRU's own profile")
    own = wait_for(lambda: profile_of(yjs, as_yjs, {"school_exclusion"}), "the YJS's own profile")
    # Facts only from what the YJS's agreements cover: the schools' exclusion, no police or social care.
    assert own["factors"]["school_exclusion"]["partners"] == ["reading_schools"], own

    # Another recipient's token, or the bus's internal one, is unknown to the caller.
    for token, who in ((vru, as_yjs), (yjs, as_vru), (person, as_yjs), (person, as_vru)):
        resp = get(f"/api/persons/{token}", who)
        assert resp.status_code == 404, (token, resp.text)
        assert resp.json() == {"error": "unknown person token"}

    # Each cohort ranks, and the health counts, the caller's own view only.
    for who, mine in ((as_yjs, yjs), (as_vru, vru)):
        resp = get("/api/cohort?n=100", who)
        assert resp.status_code == 200, resp.text
        assert [e["person_token"] for e in resp.json()["cohort"]] == [mine]
        assert get("/api/health", who).json()["profiles"] == 1
