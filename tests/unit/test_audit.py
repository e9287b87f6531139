"""Audit chain building and tamper detection, without a broker (ChainVerifier is what `verify` feeds)."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from agents.audit_sink import AuditSink
from streams.deadletter import RawRecord, header
from streams.enforce import audit
from streams.enforce.audit import GENESIS, AuditChain, audit_partition, canonical, chain_id, record_hash
from streams.enforce.audit_store import check_decision
from streams.enforce.audit_verify import ChainVerifier, VerifyReport
from streams.errors import ValidationError

CHAIN = chain_id("raw.thames_valley_police.police.crime_recorded", 3)


def decision(i: int = 0, **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "source_partner": "thames_valley_police",
        "event_type": "police.crime_recorded",
        "recipient": "vru_analysts",
        "agreement_id": "tvp-vru",
        "agreement_version": "3",
        "plan_version": "pv1",
        "outcome": "shared",
        "reason": "shared under tvp-vru",
        "released": ["envelope.event_id", "offence_code"],
        "withheld": ["subject.nhs_number"],
        "transformed": ["subject.date_of_birth"],
        "invalid_identifiers": [],
        "subject_tokens": [f"k1.token{i}"],
        "output_topic": "shared.vru_analysts.police.crime_recorded",
        "at": "2026-03-01T10:00:00.000+00:00",
    }
    fields.update(over)
    return fields


def build(n: int, chain: str = CHAIN) -> list[bytes]:
    c = AuditChain(chain)
    return [c.append(**decision(i))[1] for i in range(n)]


def check(values: list[bytes | None], n_partitions: int | None = None, partition: int = 0) -> VerifyReport:
    verifier = ChainVerifier("audit.test", n_partitions)
    for offset, value in enumerate(values):
        verifier.feed(value, partition, offset)
    return verifier.finish()


def rewrite(value: bytes, recompute: bool = False, **changes: Any) -> bytes:
    rec = json.loads(value)
    rec.update(changes)
    if recompute:
        rec["hash"] = record_hash(rec)
    return canonical(rec)


# --------------------------------------------------------------------------- building


def test_append_builds_a_linked_canonical_chain() -> None:
    c = AuditChain(CHAIN)
    key1, v1 = c.append(**decision(1))
    key2, v2 = c.append(**decision(2))
    r1, r2 = json.loads(v1), json.loads(v2)
    assert key1 == key2 == CHAIN.encode()
    assert (r1["seq"], r2["seq"]) == (1, 2)
    assert r1["prev_hash"] == GENESIS
    assert r2["prev_hash"] == r1["hash"]
    assert r1["hash"] == record_hash(r1)
    # Canonical: exactly the sorted-keys, compact UTF-8 encoding of the record.
    assert v1 == json.dumps(r1, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert r1["kind"] == "decision" and r1["chain"] == CHAIN
    assert (c.seq, c.prev_hash) == (2, r2["hash"])


def test_hash_covers_every_field_but_itself() -> None:
    (value,) = build(1)
    rec = json.loads(value)
    body = {k: v for k, v in rec.items() if k != "hash"}
    assert rec["hash"] == hashlib.sha256(canonical(body)).hexdigest()
    for field in body:
        changed = dict(rec)
        changed[field] = "x" if changed[field] != "x" else "y"
        assert record_hash(changed) != rec["hash"], field


def test_decision_defaults_and_timestamps() -> None:
    c = AuditChain(CHAIN)
    before = datetime.now(UTC)
    _, v = c.append(
        event_id="e",
        source_partner="p",
        event_type="a.b",
        recipient="*",
        outcome="denied",
        reason="no agreement",
    )
    rec = json.loads(v)
    assert rec["agreement_id"] is None and rec["output_topic"] is None and rec["plan_version"] is None
    assert rec["released"] == rec["withheld"] == rec["subject_tokens"] == rec["invalid_identifiers"] == []
    at = datetime.fromisoformat(rec["at"])
    assert at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC) + timedelta(seconds=1)
    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    _, v = c.append(**decision(at=local))
    assert json.loads(v)["at"] == "2026-03-01T10:00:00.000+00:00"


def test_other_kinds_need_no_decision_fields() -> None:
    c = AuditChain(CHAIN)
    _, v = c.append(kind="request", request="erasure", requester="tvp:dpo", event_ids=["e1"])
    rec = json.loads(v)
    assert rec["kind"] == "request" and "outcome" not in rec and rec["hash"] == record_hash(rec)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"outcome": "maybe"}, "outcome"),
        ({"seq": 7}, "audit"),
        ({"hash": "0" * 64}, "audit"),
        ({"released": {1, 2}}, "audit"),  # a set is not JSON
        ({"reason": float("nan")}, "audit"),  # NaN has no canonical JSON
        ({"at": datetime(2026, 1, 1)}, "at"),  # naive
    ],
)
def test_bad_records_are_refused_and_do_not_advance_the_chain(fields: dict[str, Any], field: str) -> None:
    c = AuditChain(CHAIN)
    c.append(**decision(0))
    position = (c.seq, c.prev_hash)
    with pytest.raises(ValidationError) as info:
        c.append(**decision(1, **fields))
    assert info.value.field == field
    assert (c.seq, c.prev_hash) == position


def test_missing_required_decision_field_is_refused() -> None:
    fields = decision(0)
    del fields["recipient"]
    with pytest.raises(ValidationError, match="recipient"):
        AuditChain(CHAIN).append(**fields)


def test_placeholder_in_caller_data_still_gives_a_canonical_record() -> None:
    """The one-encode fast path cuts out a random placeholder; data containing it takes the slow path."""
    c = AuditChain(CHAIN)
    _, v = c.append(**decision(0, reason=audit._PLACEHOLDER, extra={"hash": audit._PLACEHOLDER}))
    rec = json.loads(v)
    assert rec["reason"] == audit._PLACEHOLDER and rec["hash"] == record_hash(rec)
    assert canonical(rec) == v
    assert check([v]).ok


def test_audit_partition_is_stable_and_in_range() -> None:
    assert audit_partition(CHAIN, 4) == zlib.crc32(CHAIN.encode()) % 4
    spread = {audit_partition(chain_id("raw.p.a.b", p), 8) for p in range(64)}
    assert spread <= set(range(8)) and len(spread) > 4
    with pytest.raises(audit.ConfigurationError):
        audit_partition(CHAIN, 0)


def test_recovered_position_continues_the_chain() -> None:
    values = build(3)
    last = json.loads(values[-1])
    c = AuditChain(CHAIN, prev_hash=last["hash"], seq=last["seq"])
    values.append(c.append(**decision(3))[1])
    assert check(values).ok


# --------------------------------------------------------------------------- tamper detection


def test_intact_chains_verify() -> None:
    a, b = build(5, "raw.p.x.y/0"), build(4, "raw.p.x.y/1")
    interleaved = [v for pair in zip(a, b, strict=False) for v in pair] + a[4:]
    report = check(interleaved)
    assert report.ok and report.records == 9
    assert {c: s.last_seq for c, s in report.chains.items()} == {"raw.p.x.y/0": 5, "raw.p.x.y/1": 4}
    assert report.chains["raw.p.x.y/0"].last_hash == json.loads(a[-1])["hash"]


def test_modified_field_is_found() -> None:
    values = build(5)
    values[2] = rewrite(values[2], recipient="someone_else")
    report = check(values)
    assert [(b.chain, b.seq, b.offset) for b in report.breaks] == [(CHAIN, 3, 2)]
    assert "hash does not match" in report.breaks[0].problem


def test_modified_field_with_recomputed_hash_breaks_the_next_link() -> None:
    values = build(5)
    values[2] = rewrite(values[2], recompute=True, withheld=[])
    report = check(values)
    assert [(b.seq, b.problem) for b in report.breaks] == [
        (4, "prev_hash does not link to the previous record")
    ]


def test_deleted_record_is_found() -> None:
    values = build(5)
    del values[2]
    report = check(values)
    assert [b.seq for b in report.breaks] == [4]
    assert "seq 4 follows 2" in report.breaks[0].problem
    assert "prev_hash does not link" in report.breaks[0].problem


def test_reordered_records_are_found() -> None:
    values = build(5)
    values[1], values[2] = values[2], values[1]
    report = check(values)
    assert not report.ok
    assert report.breaks[0].seq == 3 and "seq 3 follows 1" in report.breaks[0].problem


def test_replayed_and_restarted_chains_are_found() -> None:
    values = build(3)
    report = check([*values, values[1]])
    assert [b.seq for b in report.breaks] == [2]
    restarted = build(2)  # a writer that forgot to recover starts again at genesis
    report = check(values + restarted)
    assert [b.seq for b in report.breaks] == [1]


def test_unreadable_records_and_wrong_partitions_are_breaks() -> None:
    values = build(2)
    report = check([values[0], b"not json", None, b"[1]", values[1]])
    assert [b.offset for b in report.breaks] == [1, 2, 3]
    assert all(b.chain is None and "unreadable" in b.problem for b in report.breaks)
    wrong = (audit_partition(CHAIN, 4) + 1) % 4
    report = check(values, n_partitions=4, partition=wrong)
    assert len(report.breaks) == 1 and f"expected {audit_partition(CHAIN, 4)}" in report.breaks[0].problem


def test_anchors_catch_a_cut_tail() -> None:
    values = build(5)
    heads = {CHAIN: (5, json.loads(values[4])["hash"])}
    verifier = ChainVerifier("audit.test", anchors=heads)
    for offset, v in enumerate(values[:3]):  # the last two records were removed
        verifier.feed(v, 0, offset)
    report = verifier.finish()
    assert [(b.chain, b.seq) for b in report.breaks] == [(CHAIN, 5)]
    assert "chain ends at seq 3" in report.breaks[0].problem
    verifier = ChainVerifier("audit.test", anchors={CHAIN: (2, "f" * 64)})
    for offset, v in enumerate(values):
        verifier.feed(v, 0, offset)
    assert [b.problem for b in verifier.finish().breaks] == ["anchored hash differs from the topic's"]


# --------------------------------------------------------------------------- store-side checks


def test_check_decision_accepts_chained_records_only() -> None:
    (value,) = build(1)
    check_decision(json.loads(value))
    with pytest.raises(ValidationError, match="hash"):
        check_decision(decision(0))  # never chained
    bad = json.loads(value)
    bad["released"] = "offence_code"
    with pytest.raises(ValidationError) as info:
        check_decision(bad)
    assert info.value.field == "released"


class _NoStore:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def ensure_schema(self) -> None:
        pass

    def write_many(self, records: list[dict[str, Any]]) -> int:
        self.batches.append(records)
        return len(records)


def test_sink_dead_letters_what_it_cannot_parse_and_skips_other_kinds() -> None:
    good = build(2)
    other = AuditChain("raw.p.x.y/9").append(kind="request", request="erasure")[1]
    incomplete = canonical({"kind": "decision", "event_id": "e"})
    records = [
        RawRecord("audit.decisions", 0, i, b"k", v)
        for i, v in enumerate([good[0], b"\xff not json", other, incomplete, good[1]])
    ]
    store = _NoStore()
    result = AuditSink(store).handle(records)  # type: ignore[arg-type]
    assert result.stored == 2 and result.skipped == 1 and result.duplicates == 0
    assert [[r["seq"] for r in batch] for batch in store.batches] == [[1, 2]]  # one write per batch
    assert [header(d.headers, "sharingbus.dlq.reason") for d in result.dead] == ["decode_error", "validation"]
    assert [header(d.headers, "sharingbus.dlq.source") for d in result.dead] == [
        "audit.decisions/0/1",
        "audit.decisions/0/3",
    ]
    assert all(d.topic == "dlq.audit_sink" for d in result.dead)
    assert result.dead[0].value == b"\xff not json"


def test_canonical_form_is_the_json_module_s_sorted_compact_form() -> None:
    """The ledger's hashes must be reproducible with nothing but the standard library."""
    import json

    from streams.enforce.audit import canonical

    record = {
        "event_id": "5d0c6e7e-0000-4000-8000-000000000001",
        "recipient": "vru_analysts",
        "released": ["a", "b"],
        "seq": 7,
        "output_topic": None,
        "ok": True,
        "reason": "naïve café — “quoted” \\ back\nline",
    }
    expected = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical(record) == expected


def test_seal_gives_the_same_bytes_as_append_for_a_complete_record() -> None:
    """The enforcer's unchecked path (`seal`) and the checked one (`append`) write identical records."""
    at = "2026-11-25T10:00:00.123456+00:00"
    shared = {
        "event_id": "e1",
        "source_partner": "tvp",
        "event_type": "police.crime_recorded",
        "at": at,
        "recipient": "vru",
        "agreement_id": "a1",
        "agreement_version": "3",
        "plan_version": "p9",
        "outcome": "shared",
        "reason": "shared under a1 v3",
        "released": ["occurred_at"],
        "withheld": ["subject.given_name"],
        "transformed": ["subject.nhs_number"],
        "invalid_identifiers": [],
        "subject_tokens": ["k1.abc"],
        "output_topic": "shared.vru.police.crime_recorded",
        "output_key": "k1.abc",
        "source_offset": 42,
    }
    denied = {k: shared[k] for k in ("event_id", "source_partner", "event_type", "at")} | {
        "recipient": "*",
        "outcome": "denied",
        "reason": "no agreement covers x",
    }
    checked = AuditChain("raw.tvp.police.crime_recorded/0")
    unchecked = AuditChain("raw.tvp.police.crime_recorded/0")
    for fields in (shared, denied, shared):
        written = checked.append(**dict(fields))
        complete = json.loads(written[1])
        for k in ("chain", "seq", "prev_hash", "hash"):
            del complete[k]
        assert unchecked.seal(complete) == written
    assert (unchecked.seq, unchecked.prev_hash) == (checked.seq, checked.prev_hash) == (3, checked.prev_hash)
