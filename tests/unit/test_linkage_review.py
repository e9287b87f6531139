"""The review queue on real PostgreSQL, the stage applying decisions, and the command's identity checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.deadletter import RawRecord
from streams.linkage.linker import Linker
from streams.linkage.outcome import Review, review_id
from streams.linkage.review import ReviewError, ReviewStore, decision_record
from streams.settings import Settings

EXPLAIN = {
    "rule": "probabilistic",
    "weight": 1.5,
    "comparisons": {"postcode": {"level": "different", "weight": -3}},
}


def _review(a: str, b: str) -> Review:
    return Review(review_id(a, b), a, b, 1.5, EXPLAIN)


def test_queue_is_idempotent_and_decisions_are_audited(pg_dsn: str) -> None:
    store = ReviewStore(pg_dsn)
    r = _review("p.aaa", "p.bbb")
    assert store.queue([(r, "e1")]) == 1
    assert store.queue([(r, "e2")]) == 0  # asked once
    assert r.id in [row.id for row in store.pending()]
    with (
        pytest.raises(ReviewError, match="at least 10 characters"),
        store.deciding(r.id, True, "council:dpo", "ok"),
    ):
        pass
    with (
        pytest.raises(RuntimeError),
        store.deciding(r.id, True, "council:dpo", "same person, checked the file"),
    ):
        raise RuntimeError("broker down")  # not delivered: nothing recorded
    assert store.get(r.id).status == "pending"  # type: ignore[union-attr]
    with store.deciding(r.id, True, "council:dpo", "same person, checked the file") as row:
        assert row.person_a == "p.aaa" and row.explanation == EXPLAIN
    decided = store.get(r.id)
    assert decided is not None and decided.status == "accepted" and decided.decided_by == "council:dpo"
    disagree = "I disagree with this one"
    with (
        pytest.raises(ReviewError, match="already accepted"),
        store.deciding(r.id, False, "police:dpo", disagree),
    ):
        pass
    with (
        pytest.raises(ReviewError, match=r"no review r\.nothing"),
        store.deciding("r.nothing", False, "x:y", disagree),
    ):
        pass
    assert [(a, who, o.split(":")[0]) for a, who, _, o in store.audit_log(r.id)] == [
        ("accept", "council:dpo", "refused"),
        ("accept", "council:dpo", "done"),
        ("reject", "police:dpo", "refused"),
    ]
    assert [o for *_, o in store.audit_log("r.nothing")] == ["refused: no review r.nothing"]
    assert r.id not in [row.id for row in store.pending()]


def _stage(sent: list[Any]) -> Any:
    from agents.linker import LINK_STATE, LinkerStage

    changelog: dict[str, Any] = {}

    def send(outputs: list[Any]) -> None:
        for out in outputs:
            if out.topic == LINK_STATE:
                changelog[out.key.decode()] = json.loads(out.value) if out.value else None
            else:
                sent.append(out)

    return LinkerStage(send, lambda: Linker.from_state(changelog), vault=None)


def test_the_stage_applies_an_accepted_review_as_a_merge() -> None:
    from streams.linkage.view_tokens import ViewTokens
    from streams.privacy.keys import KeyRing

    sent: list[Any] = []
    stage = _stage(sent)
    tokens = ViewTokens(KeyRing.from_secrets({"k1": b"r" * 32}, "k1"), "k1")
    stage._view_tokens = tokens
    views = {"view_recipients": ["vru"]}  # the recipients holding person views, as the enforcer says
    a = {"event_id": "e0", "subject_index": 0, "source_partner": "h", "tokens": {"nhs_number": "n1"}, **views}
    b = {"event_id": "e1", "subject_index": 0, "source_partner": "p", "tokens": {"pnc_id": "c1"}, **views}
    stage.process(
        [RawRecord("link.identifiers", 0, i, None, json.dumps(d).encode()) for i, d in enumerate((a, b))]
    )
    assert stage.linker is not None
    pa, pb = sorted(stage.linker.to_state())  # the two clusters' person tokens (never on link.person)
    row = type("Row", (), {"id": review_id(pa, pb), "person_a": pa, "person_b": pb})()
    value = decision_record(row, True, "police:dpo")  # type: ignore[arg-type]
    before = len(sent)
    stage.process([RawRecord("link.identifiers", 0, 2, b"review", value)])
    (merge,) = [json.loads(o.value) for o in sent[before:] if o.topic == "link.person"]
    # the merge reaches the VRU's person view in the VRU's own tokens
    assert merge["kind"] == "merge" and merge["recipient"] == "vru"
    assert {merge["from"], merge["into"]} == {tokens.token("vru", pa), tokens.token("vru", pb)}
    assert merge["why"] == {"rule": "review", "review_id": review_id(pa, pb), "reviewer": "police:dpo"}
    bad = json.dumps({"kind": "review_decision", "a": pa}).encode()
    stage.process([RawRecord("link.identifiers", 0, 3, b"review", bad)])
    assert sent[-1].topic == "dlq.linker"


def _sharebus(data_dir: Path, *args: str, dsn: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env["SHARINGBUS_DATA_DIR"] = str(data_dir)
    if dsn:
        env["SHARINGBUS_POSTGRES_DSN"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_deciding_needs_a_verified_reviewer(tmp_path: Path, pg_dsn: str) -> None:
    from streams.identity import LocalIssuer

    store = ReviewStore(pg_dsn)
    r = _review("p.ccc", "p.ddd")
    store.queue([(r, "e9")])
    issuer = LocalIssuer.from_settings(Settings(data_dir=tmp_path))
    reason = ["--reason", "same person, checked the file"]
    done = _sharebus(
        tmp_path, "linkage", "review", "accept", r.id, "--auth-token", "not-a-jwt", *reason, dsn=pg_dsn
    )
    assert (
        done.returncode == 2
        and done.stderr.startswith("error: not authenticated")
        and "\n" not in done.stderr[:-1]
    )
    no_role = issuer.mint("ana", partner="council")
    done = _sharebus(
        tmp_path, "linkage", "review", "accept", r.id, "--auth-token", no_role, *reason, dsn=pg_dsn
    )
    assert done.returncode == 2 and "linkage_reviewer" in done.stderr
    assert store.get(r.id).status == "pending"  # type: ignore[union-attr]
    listed = _sharebus(tmp_path, "linkage", "review", "list", "--json", dsn=pg_dsn)
    assert listed.returncode == 0 and r.id in [json.loads(line)["id"] for line in listed.stdout.splitlines()]
