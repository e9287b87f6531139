"""`sharebus linkage review accept` end to end: verified reviewer, audit, decision on the real broker,
the linker merging the two people when it reads the decision (what views receive: unit tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from streams import topics
from streams.deadletter import RawRecord
from streams.identity import LocalIssuer
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.reader import read_to_end
from streams.linkage.linker import Linker
from streams.linkage.outcome import Review, review_id
from streams.linkage.review import ReviewStore
from streams.settings import Settings


def _sharebus(settings: Settings, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env.update(
        SHARINGBUS_DATA_DIR=str(data_dir),
        SHARINGBUS_POSTGRES_DSN=settings.postgres_dsn,
        SHARINGBUS_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
    )
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", "linkage", "review", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_an_authenticated_reviewer_accepts_and_the_linker_merges(settings: Settings, tmp_path: Path) -> None:
    from agents.linker import LINK_STATE, LinkerStage

    ensure_topics(settings, [TopicSpec(topics.LINK_IDENTIFIERS, 1)])
    linker = Linker()
    a = linker.link({"source_partner": "health", "tokens": {"nhs_number": "n-review-1"}}).person
    b = linker.link({"source_partner": "police", "tokens": {"pnc_id": "c-review-1"}}).person
    assert a and b and a != b
    store = ReviewStore(settings.postgres_dsn)
    review = Review(review_id(a, b), a, b, 1.2, {"rule": "probabilistic", "comparisons": {}})
    store.queue([(review, "e-review")])

    token = LocalIssuer.from_settings(Settings(data_dir=tmp_path)).mint(
        "dpo.jones", partner="council", roles=["linkage_reviewer"]
    )
    done = _sharebus(
        settings, tmp_path, "accept", review.id, "--auth-token", token, "--reason", "same child, referral"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"accepted: {review.id}"
    row = store.get(review.id)
    assert row is not None and row.status == "accepted" and row.decided_by == "council:dpo.jones"
    assert [o for *_, o in store.audit_log(review.id)] == ["done"]

    sent = [
        m
        for m in read_to_end(settings.kafka_config(), topics.LINK_IDENTIFIERS)
        if review.id.encode() in (m.value() or b"")
    ]
    assert len(sent) == 1 and json.loads(sent[0].value())["reviewer"] == "council:dpo.jones"
    outputs: list[Any] = []
    stage = LinkerStage(outputs.extend, lambda: linker, vault=None)
    msg = sent[0]
    stage.process([RawRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())])
    assert linker.resolve(a) == linker.resolve(b)  # merged (its per-view merges: test_linkage_review.py)
    assert any(o.topic == LINK_STATE and o.value is None for o in outputs)  # the merged-away cluster

    again = _sharebus(
        settings, tmp_path, "reject", review.id, "--auth-token", token, "--reason", "changed my mind now"
    )
    assert (
        again.returncode == 2
        and again.stderr == f"error: review {review.id} was already accepted by council:dpo.jones\n"
    )
