"""Metric updates gathered per batch and applied once per labelled child at its end.

Each `inc()`/`observe()` on a prometheus_client metric takes a lock (and in multiprocess mode
writes an mmap), and an event would make 6-8 of them; a batch makes one per child. Scrapes see a
batch at a time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from streams import metrics

STAGE = "enforcer"


class Children:
    """Labelled metric children, looked up once per label tuple (`labels()` costs ~3 us a call)."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Tally:
    """Counts, last-seen times and observations of one batch, written by `flush`."""

    __slots__ = ("counts", "last_seen", "observed")

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}
        self.last_seen: dict[Any, float] = {}
        self.observed: dict[Any, list[float]] = {}

    def add(self, child: Any, n: int = 1) -> None:
        counts = self.counts
        counts[child] = counts.get(child, 0) + n

    def observe(self, child: Any, value: float) -> None:
        values = self.observed.get(child)
        if values is None:
            self.observed[child] = [value]
        else:
            values.append(value)

    def flush(self) -> None:
        counts, self.counts = self.counts, {}
        for child, n in counts.items():
            child.inc(n)
        seen, self.last_seen = self.last_seen, {}
        for child, at in seen.items():
            child.set(at)
        observed, self.observed = self.observed, {}
        for child, values in observed.items():
            observe_many(child, values)


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """`histogram.observe(v) for v in values` with one update per bucket.

    prometheus_client keeps per-bucket (non-cumulative) counts and a sum, and `observe` bumps the
    first bucket whose bound is >= the value; this does the same in bulk (a unit test compares the
    exposition with per-value `observe`). Falls back to `observe` if those internals change.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            histogram.observe(v)
        return
    per_bucket: dict[int, int] = {}
    for v in values:
        i = bisect_left(bounds, v)
        per_bucket[i] = per_bucket.get(i, 0) + 1
    total.inc(sum(values))
    for i, n in per_bucket.items():
        buckets[i].inc(n)


PROCESSING = metrics.PROCESSING_TIME.labels(stage=STAGE)
CONSUMED = Children(metrics.EVENTS_CONSUMED)  # partner, event_type
LAST_SEEN = Children(metrics.LAST_EVENT_TIMESTAMP)  # partner
PRODUCED = Children(metrics.EVENTS_PRODUCED)  # recipient, event_type
DECISIONS = Children(metrics.DECISIONS)  # agreement, recipient, outcome
LATENCY = Children(metrics.END_TO_END_LATENCY)  # event_type
_DEAD_LETTERS = Children(metrics.DEAD_LETTERS)  # stage, reason


def dead_letters(reason: str) -> Any:
    """The enforcer's dead-letter counter for `reason` (unknown reasons count as internal errors)."""
    return _DEAD_LETTERS(STAGE, metrics.dead_letter_reason(reason))
