"""The web guard's person-view grants come from the agreements' views sections, read without keys."""

from __future__ import annotations

import shutil
from pathlib import Path

from agents.web.grants import PersonViewReaders
from streams.avro.catalogue import load_catalogue
from streams.settings import ROOT


def test_grants_follow_the_agreements_and_a_revocation_applies(tmp_path: Path) -> None:
    agreements = tmp_path / "agreements"
    shutil.copytree(ROOT / "agreements", agreements)
    now = [0.0]
    readers = PersonViewReaders(
        agreements, load_catalogue(ROOT / "schemas"), interval=5, clock=lambda: now[0]
    )
    assert readers() == frozenset({"vru_analysts"})
    for path in agreements.glob("*.yaml"):  # revoke: no agreement keeps a person_profile grant
        text = path.read_text()
        if "person_profile" in text:
            path.write_text(text.split("\nviews:", 1)[0] + "\n")
    assert readers() == frozenset({"vru_analysts"})  # not re-read within the interval
    now[0] = 6.0
    assert readers() == frozenset()
    shutil.rmtree(agreements)
    now[0] = 12.0
    assert readers() == frozenset()  # unreadable: nothing granted
