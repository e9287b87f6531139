"""Per-batch timestamps of a consume -> decide -> produce -> commit loop, for a latency budget.

A batch is polled, decided (CPU), handed to the producer, acknowledged by the broker, and its
offsets committed. Where a millisecond of publish-to-share latency goes is only visible with a
stamp at each of those points: `BatchStamps` holds them (wall-clock seconds, comparable with
Kafka record timestamps) and `StageLog` appends one JSON line per batch to a file, which
`benchmarks/throughput.py` joins with the publish and acknowledgement times it saw itself.

Off unless `SHARINGBUS_STAGE_LOG_PATH` is set: a disabled log costs one attribute test per batch.
The acknowledgement time comes from librdkafka's own per-message latency (produce call to broker
acknowledgement), so no extra thread or callback wakes up for it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BatchStamps:
    """One batch's journey; every time is `time.time()` seconds, 0.0 while not reached."""

    polled: float
    # (topic, partition, first offset, last offset) of the batch's input records
    ranges: list[tuple[str, int, int, int]]
    decided: float = 0.0
    produced: float = 0.0  # the first output handed to the producer
    acked: float = 0.0  # the batch's last output acknowledged by the broker
    committed: float = 0.0
    outputs: int = 0
    ack_latencies: list[float] = field(default_factory=list)  # produce -> ack of each output (s)

    def settle(self) -> None:
        """The ack time from librdkafka's per-message latencies (each from its own produce call,
        which comes after `produced`): `produced + max latency` errs early by at most the produce
        loop's own duration."""
        if self.ack_latencies:
            self.acked = self.produced + max(self.ack_latencies)

    def as_json(self) -> str:
        return json.dumps(
            {
                "polled": self.polled,
                "decided": self.decided,
                "produced": self.produced,
                "acked": self.acked,
                "committed": self.committed,
                "outputs": self.outputs,
                "ranges": self.ranges,
            }
        )


def input_ranges(records: list[Any]) -> list[tuple[str, int, int, int]]:
    """First and last offset per input partition of a batch (records arrive in offset order)."""
    spans: dict[tuple[str, int], list[int]] = {}
    for r in records:
        span = spans.get((r.topic, r.partition))
        if span is None:
            spans[(r.topic, r.partition)] = [r.offset, r.offset]
        else:
            span[1] = r.offset
    return [(t, p, first, last) for (t, p), (first, last) in spans.items()]


class StageLog:
    """Appends finished batches' stamps to a JSON-lines file; `enabled` is False without a path."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh = path.open("a", buffering=1) if path is not None else None

    def start(self, records: list[Any]) -> BatchStamps | None:
        """Stamps for a batch just polled (None when disabled)."""
        if self._fh is None:
            return None
        return BatchStamps(time.time(), input_ranges(records))

    def write(self, stamps: BatchStamps | None) -> None:
        if self._fh is None or stamps is None:
            return
        stamps.settle()
        with self._lock:
            self._fh.write(stamps.as_json() + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_stage_log(path: Path) -> list[dict[str, Any]]:
    """Every batch written to a stage log (a missing file has none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
