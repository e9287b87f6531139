"""Audit chains on the real broker: batched writes, recovery at partition EOF, verify, forgery, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from agents.audit_sink import reload_from_topic
from streams.enforce.audit import AuditChain, audit_partition, canonical, chain_id
from streams.enforce.audit_recovery import recover_chain, recover_chains
from streams.enforce.audit_store import AuditStore
from streams.enforce.audit_verify import verify
from streams.errors import BrokerError, ConfigurationError
from streams.settings import Settings

N_PARTITIONS = 4
CHAINS = [chain_id(f"raw.partner_{i % 3}.police.crime_recorded", i) for i in range(6)]


def fields(chain: str, i: int) -> dict[str, Any]:
    return {
        "event_id": f"{chain}#{i}",
        "source_partner": "thames_valley_police",
        "event_type": "police.crime_recorded",
        "recipient": f"recipient_{i % 3}",
        "outcome": "shared" if i % 4 else "denied",
        "reason": "test",
        "subject_tokens": [f"k1.t{i}"],
    }


def produce_batched(settings: Settings, topic: str, records: list[tuple[int, bytes, bytes]]) -> None:
    """Every record queued before ONE flush, so Tansu stores them as large batches."""
    producer = Producer(settings.kafka_config(**{"linger.ms": 100, "enable.idempotence": True}))
    for partition, key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def write(chains: dict[str, AuditChain], counts: dict[str, int]) -> list[tuple[int, bytes, bytes]]:
    """Interleave appends across chains (as one enforcer batch over several partitions would)."""
    out = []
    for i in range(max(counts.values())):
        for c, n in counts.items():
            if i < n:
                key, value = chains[c].append(**fields(c, chains[c].seq + 1))
                out.append((audit_partition(c, N_PARTITIONS), key, value))
    return out


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGBUS_")}
    env.update(settings.to_env())
    return subprocess.run(
        [sys.executable, "-m", "sharebus.main", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def audit_topic(topic_factory: Callable[..., str]) -> str:
    return topic_factory("audit", partitions=N_PARTITIONS)


def test_recover_continues_after_the_last_record_of_a_batched_write(
    settings: Settings, audit_topic: str
) -> None:
    conf = settings.kafka_config()
    counts = {c: 40 + 17 * i for i, c in enumerate(CHAINS[:5])}  # CHAINS[5] stays empty
    writers = {c: AuditChain(c) for c in counts}
    produce_batched(settings, audit_topic, write(writers, counts))

    recovered = recover_chains(conf, CHAINS, N_PARTITIONS, topic=audit_topic)
    for c, n in counts.items():
        got = recovered[c]
        assert (got.seq, got.prev_hash) == (n, writers[c].prev_hash), c
        assert got.partition == audit_partition(c, N_PARTITIONS)
    empty = recovered[CHAINS[5]]
    assert (empty.seq, empty.prev_hash, empty.partition) == (0, "0" * 64, audit_partition(CHAINS[5], 4))
    single = recover_chain(conf, CHAINS[2], N_PARTITIONS, topic=audit_topic)
    assert (single.seq, single.prev_hash) == (counts[CHAINS[2]], writers[CHAINS[2]].prev_hash)

    # A new owner continues the chains it recovered (another batch), and the whole topic verifies.
    more = {CHAINS[0]: 7, CHAINS[3]: 3, CHAINS[5]: 4}
    produce_batched(settings, audit_topic, write(recovered, more))
    report = verify(conf, audit_topic)
    assert report.ok, report.breaks
    assert report.records == sum(counts.values()) + sum(more.values())
    expected = {c: counts.get(c, 0) + more.get(c, 0) for c in CHAINS}
    assert {c: s.last_seq for c, s in report.chains.items()} == expected
    assert {c: s.records for c, s in report.chains.items()} == expected

    with pytest.raises(ConfigurationError, match="partitions"):
        recover_chain(conf, CHAINS[0], N_PARTITIONS + 1, topic=audit_topic)
    with pytest.raises(BrokerError, match="does not exist"):  # a mistyped topic must not verify as OK
        verify(conf, audit_topic + "-missing")


def test_verify_finds_a_forged_record_and_the_cli_exits_1(settings: Settings, audit_topic: str) -> None:
    conf = settings.kafka_config()
    counts = {CHAINS[0]: 30, CHAINS[1]: 20}
    writers = {c: AuditChain(c) for c in counts}
    produce_batched(settings, audit_topic, write(writers, counts))

    ok = run_cli(settings, "verify", "--topic", audit_topic)
    assert ok.returncode == 0, ok.stderr
    assert f"audit verify {audit_topic}: 50 records in 2 chains: OK" in ok.stdout

    # Forge the next record of chain 0: a plausible decision, but its content was edited after hashing.
    target = CHAINS[0]
    key, value = AuditChain(target, writers[target].prev_hash, writers[target].seq).append(
        **fields(target, 31)
    )
    forged = json.loads(value)
    forged["recipient"] = "someone_unauthorised"
    produce_batched(settings, audit_topic, [(audit_partition(target, N_PARTITIONS), key, canonical(forged))])

    report = verify(conf, audit_topic)
    assert not report.ok
    assert [(b.chain, b.seq) for b in report.breaks] == [(target, 31)]
    assert "hash does not match" in report.breaks[0].problem

    bad = run_cli(settings, "verify", "--topic", audit_topic, "--json")
    assert bad.returncode == 1
    summary = json.loads(bad.stdout)
    assert summary["ok"] is False and summary["records"] == 51
    assert [(b["chain"], b["seq"]) for b in summary["breaks"]] == [(target, 31)]


def test_reload_replays_the_ledger_into_postgres_idempotently(
    settings: Settings, audit_topic: str, pg_dsn: str
) -> None:
    chain = AuditChain(chain_id("raw.partner_0.police.crime_recorded", 99))
    key = chain.chain_id.encode()
    partition = audit_partition(chain.chain_id, N_PARTITIONS)
    records = [(partition, *chain.append(**fields(chain.chain_id, i))) for i in range(1, 21)]
    first = json.loads(records[0][2])
    # A re-decision after a crash: the same (event, recipient) again, later in the chain.
    records.append((partition, *chain.append(**{**fields(chain.chain_id, 1), "reason": "re-decided"})))
    records.append((partition, key, b"not json"))
    produce_batched(settings, audit_topic, [(p, k, v) for p, k, v in records])

    with AuditStore(pg_dsn) as store:
        store.ensure_schema()
        result = reload_from_topic(settings.kafka_config(), store, audit_topic, batch_size=8)
        assert (result.stored, result.duplicates, len(result.dead)) == (20, 1, 1)
        assert store.by_event(first["event_id"]) == [first]
        again = reload_from_topic(settings.kafka_config(), store, audit_topic)
        assert (again.stored, again.duplicates) == (0, 21)


def test_recovery_reads_back_from_the_end_until_every_chain_is_found(
    settings: Settings, topic_factory: Callable[..., str]
) -> None:
    """A chain whose last record lies far behind other chains' recent records (an idle input
    partition) is still found: the windows read back from the end grow until it is."""
    topic = topic_factory("audit-windows", partitions=1)
    conf = settings.kafka_config()
    old, busy, never = "raw.a.police.crime_recorded/0", "raw.b.police.crime_recorded/1", "raw.c.x/2"
    writers = {old: AuditChain(old), busy: AuditChain(busy)}
    records = [(0, *writers[old].append(**fields(old, i + 1))) for i in range(3)]
    records += [(0, *writers[busy].append(**fields(busy, i + 1))) for i in range(500)]
    produce_batched(settings, topic, records)

    for window in (7, 64, 4096):  # 7 and 64 need several windows to reach `old`; 4096 one
        got = recover_chains(conf, [old, busy, never], 1, topic=topic, window=window)
        assert (got[old].seq, got[old].prev_hash) == (3, writers[old].prev_hash), window
        assert (got[busy].seq, got[busy].prev_hash) == (500, writers[busy].prev_hash), window
        assert (got[never].seq, got[never].prev_hash) == (0, "0" * 64), window
