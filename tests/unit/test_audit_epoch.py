"""Epoch records: a chain continued from PostgreSQL verifies; any other break still shows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from streams.deadletter import Output
from streams.enforce.audit import AuditChain
from streams.enforce.audit_verify import ChainVerifier, VerifyReport
from streams.enforce.epoch import KIND_EPOCH, continue_chains

CHAIN = "raw.police.stop_search/0"


def _decision(chain: AuditChain, n: int) -> dict[str, Any]:
    _, value = chain.append(
        event_id=f"e{n}", source_partner="p", event_type="t", recipient="r", outcome="shared", reason="ok"
    )
    return dict(json.loads(value))


def _ledger() -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """(PostgreSQL's records 1..5 by seq, the new topic: an epoch record, then decisions 7..9)."""
    chain = AuditChain(CHAIN, partition=0)
    stored = {n: _decision(chain, n) for n in range(1, 6)}

    def recover(ids: list[str]) -> dict[str, AuditChain]:
        return {c: AuditChain(c, partition=0) for c in ids}  # the new topic has nothing

    written: list[Output] = []
    continued = continue_chains(
        recover, lambda ids: {CHAIN: (5, stored[5]["hash"])}, lambda outs: written.extend(outs)
    )([CHAIN])[CHAIN]
    topic = [json.loads(o.value or b"") for o in written]
    topic += [_decision(continued, n) for n in range(7, 10)]
    return stored, topic


def _verify(
    topic: Sequence[dict[str, Any]], stored: dict[int, dict[str, Any]], anchor_seq: int = 5
) -> VerifyReport:
    verifier = ChainVerifier(
        "audit",
        anchors={CHAIN: (anchor_seq, stored[anchor_seq]["hash"])},
        stored=lambda chain, seq: stored.get(seq) if chain == CHAIN else None,
    )
    for offset, record in enumerate(topic):
        verifier.feed(json.dumps(record).encode(), 0, offset)
    return verifier.finish()


def test_the_enforcer_writes_an_epoch_record_linking_to_postgresql_before_any_decision() -> None:
    stored, topic = _ledger()
    epoch = topic[0]
    assert epoch["kind"] == KIND_EPOCH and epoch["reason"] == "broker_replaced"
    assert (epoch["seq"], epoch["prev_hash"]) == (6, stored[5]["hash"])
    assert [r["seq"] for r in topic[1:]] == [7, 8, 9] and topic[1]["prev_hash"] == epoch["hash"]


def test_a_chain_continued_after_an_epoch_verifies_against_the_database() -> None:
    stored, topic = _ledger()
    report = _verify(topic, stored)
    assert report.ok, report.breaks
    assert [(e.chain, e.seq) for e in report.epochs] == [(CHAIN, 6)]
    stored[7] = topic[1]  # the audit sink stored a decision made after the epoch: the new anchor
    assert _verify(topic, stored, anchor_seq=7).ok


@pytest.mark.parametrize(
    "tamper",
    ["delete_after_epoch", "alter_after_epoch", "alter_linked_in_db", "drop_linked_in_db", "relink_epoch"],
)
def test_any_other_break_still_fails(tamper: str) -> None:
    stored, topic = _ledger()
    if tamper == "delete_after_epoch":
        del topic[2]
    elif tamper == "alter_after_epoch":
        topic[2]["recipient"] = "someone-else"
    elif tamper == "alter_linked_in_db":
        stored[5]["recipient"] = "someone-else"
    elif tamper == "drop_linked_in_db":
        del stored[5]  # PostgreSQL's head is now seq 4, and nothing holds the epoch's link
        report = _verify(topic, stored, anchor_seq=4)
        assert not report.ok and "does not hold" in report.breaks[0].problem
        return
    else:  # an epoch record forged onto another record's hash
        topic[0]["prev_hash"] = stored[4]["hash"]
    assert not _verify(topic, stored).ok


def test_a_chain_starting_mid_way_without_an_epoch_record_is_a_break() -> None:
    stored, topic = _ledger()
    assert not _verify(topic[1:], stored).ok


def test_an_epoch_record_that_is_not_acknowledged_hands_back_no_chain() -> None:
    def refuse(outputs: Sequence[Output]) -> None:
        raise RuntimeError("broker away")

    recover = continue_chains(
        lambda ids: {c: AuditChain(c, partition=0) for c in ids}, lambda ids: {CHAIN: (5, "a" * 64)}, refuse
    )
    with pytest.raises(RuntimeError):
        recover([CHAIN])


def test_a_chain_postgresql_never_held_starts_at_genesis() -> None:
    written: list[Output] = []
    chains = continue_chains(
        lambda ids: {c: AuditChain(c, partition=0) for c in ids}, lambda ids: {}, written.extend
    )([CHAIN])
    assert chains[CHAIN].seq == 0 and written == []
