"""Bulk histogram updates (the enforcer's per-batch metrics) equal one `observe` per value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.enforce.tally import observe_many

VALUES = [0.0, 0.0004, 0.005, 0.005, 0.0051, 0.3, 2.5, 7.0, 1e9, 0.1, 0.1]


def test_observe_many_matches_observe_one_by_one() -> None:
    one, bulk = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("t_seconds", "t", ["stage"], registry=one, buckets=(0.001, 0.005, 0.1, 1, 5))
    h2 = Histogram("t_seconds", "t", ["stage"], registry=bulk, buckets=(0.001, 0.005, 0.1, 1, 5))
    for v in VALUES:
        h1.labels("e").observe(v)
    observe_many(h2.labels("e"), VALUES[:4])
    observe_many(h2.labels("e"), VALUES[4:])

    def samples(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]

    assert samples(bulk) == samples(one)
    assert 't_seconds_bucket{le="0.005",stage="e"} 4.0' in samples(bulk)  # bounds are inclusive
