"""Reliability and security suite: each test gets a whole bus of its own (`tests.support.stack`).

Sizes are small by default so the suite runs in a few minutes on two cores; the same tests run at
full size with `SHARINGBUS_RELIABILITY_SIZE=full` (what `benchmarks/soak.py --full` sets).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.stack import Stack, open_stack


@dataclass(frozen=True)
class Sizes:
    """How much traffic each scenario pushes through the bus."""

    name: str
    people: int
    crash_events: int
    crash_rate: float
    network_events: int
    network_rate: float
    network_cut_s: float
    poison_bad: int
    poison_valid: int
    leak_events: int


CI = Sizes(
    name="ci",
    people=400,
    crash_events=5_000,
    crash_rate=3_000.0,
    network_events=1_800,
    network_rate=125.0,
    network_cut_s=10.0,
    poison_bad=2_000,
    poison_valid=500,
    leak_events=1_500,
)
FULL = Sizes(
    name="full",
    people=3_000,
    crash_events=20_000,
    crash_rate=3_000.0,
    network_events=12_000,
    network_rate=400.0,
    network_cut_s=10.0,
    poison_bad=10_000,
    poison_valid=2_000,
    leak_events=8_000,
)
SIZES = {"ci": CI, "full": FULL}


def current_sizes() -> Sizes:
    """The sizes `SHARINGBUS_RELIABILITY_SIZE` selects (ci unless told otherwise)."""
    name = os.environ.get("SHARINGBUS_RELIABILITY_SIZE", "ci")
    if name not in SIZES:
        raise pytest.UsageError(f"SHARINGBUS_RELIABILITY_SIZE must be one of {sorted(SIZES)}, got {name!r}")
    return SIZES[name]


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    return current_sizes()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A broker, registry, database and key ring of this test's own; workers are started by the test."""
    with open_stack(tmp_path / "bus") as s:
        yield s
