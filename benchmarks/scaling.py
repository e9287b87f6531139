"""Enforcer scale-out: one `sharebus worker --roles enforcer` against two in one consumer group.

Used by `benchmarks/throughput.py` (phase w). Each count runs on a fresh broker and registry: the
workers start on empty raw topics and are all ready (each holds partitions, so the group has
settled) before the events are written as fast as the broker takes them; events/s runs from the
first write until a separate consumer has counted every expected audit decision. Writing is inside
the window for both counts alike, so the ratio compares like with like. CPU seconds of each worker
and of the broker over the window say which one is the ceiling: on a 2-core machine two workers and
the broker share two cores.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import Counter, Encoded, Stack, cpu_seconds, log, produce_all, reframe, spawn
from streams.settings import Settings


def run_workers(
    stack: Stack,
    prepare_topics: Callable[[Settings], None],
    events: Sequence[Encoded],
    audits: int,
    workers: int,
    log_dir: Path,
    timeout: float,
) -> dict[str, Any]:
    """`workers` enforcer processes in one group on a fresh bus; their events/s and CPU."""
    with stack.bus(f"w{workers}") as bus:
        settings = bus.settings
        assert settings is not None
        prepare_topics(settings)
        framed = reframe(settings, events)
        children = []
        try:
            for i in range(workers):
                s = settings.model_copy(
                    update={"consumer_group": "bench-scale", "data_dir": settings.data_dir / f"worker{i}"}
                )
                argv = [sys.executable, "-m", "sharebus.main", "worker", "--roles", "enforcer"]
                children.append(spawn(f"scale{workers}-{i}", argv, s, log_dir, web=True))
            for child in children:
                child.wait_ready()
            for child in children:  # the last to join made the group rebalance: all ready again
                child.wait_ready()
            counter = Counter(settings, ["audit.decisions"], audits)
            pids = [c.proc.pid for c in children]
            cpu0 = [cpu_seconds(p) for p in pids]
            broker0 = cpu_seconds(bus.broker_pid) if bus.broker_pid else float("nan")
            started = time.time()
            try:
                produce_all(settings, framed)
                count = counter.wait(timeout, lambda: all(c.alive() for c in children))
            finally:
                counter.stop()
            elapsed = count.done_at - started
            cpu = [cpu_seconds(p) - c0 for p, c0 in zip(pids, cpu0, strict=True)]
            broker = (cpu_seconds(bus.broker_pid) - broker0) if bus.broker_pid else float("nan")
        finally:
            for child in children:
                child.stop()
    result = {
        "workers": workers,
        "eps": len(events) / elapsed,
        "seconds": elapsed,
        "worker_cpu": [c / elapsed for c in cpu],
        "broker_cpu": broker / elapsed,
    }
    log(
        f"(w) {workers} enforcer worker(s): {len(events)} events in {elapsed:.2f}s "
        f"= {result['eps']:,.0f} ev/s; "
        f"CPU of a core: workers {', '.join(f'{c:.0%}' for c in result['worker_cpu'])}, "
        f"broker {result['broker_cpu']:.0%}"
    )
    return result


def scaling(
    stack: Stack,
    prepare_topics: Callable[[Settings], None],
    events: Sequence[Encoded],
    audits: int,
    log_dir: Path,
    timeout: float,
) -> dict[str, Any]:
    """One worker, then two, in the same run: `ratio` is two workers' events/s over one's."""
    one = run_workers(stack, prepare_topics, events, audits, 1, log_dir, timeout)
    two = run_workers(stack, prepare_topics, events, audits, 2, log_dir, timeout)
    return {"one": one, "two": two, "ratio": two["eps"] / one["eps"]}


def describe(result: dict[str, Any]) -> list[str]:
    """Lines for the report: both counts and where the CPU went."""
    lines = []
    for key in ("one", "two"):
        r = result[key]
        lines.append(
            f"  (w) {r['workers']} enforcer worker(s)      {r['eps']:>9,.0f} events/s  (CPU of a core: "
            f"workers {' + '.join(f'{c:.0%}' for c in r['worker_cpu'])}, broker {r['broker_cpu']:.0%})"
        )
    two = result["two"]
    busy = sum(two["worker_cpu"]) + two["broker_cpu"]
    lines.append(
        f"  two workers and the broker used {busy:.2f} of the machine's cores"
        + (" (the CPUs are the ceiling)" if busy > 0.85 * (os.cpu_count() or 1) else "")
    )
    return lines
