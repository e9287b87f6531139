"""The worker's collector tuning: fewer, bigger collections, and cyclic garbage still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from agents.worker import GC_THRESHOLD, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_tune_gc_freezes_start_up_objects_and_raises_the_threshold(restore_gc: None) -> None:
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLD
    assert gc.get_freeze_count() > 1000  # modules, the test session: everything built so far


def test_cycles_made_after_tuning_are_still_collected(restore_gc: None) -> None:
    tune_gc()
    freed: list[int] = []
    for i in range(3 * GC_THRESHOLD[0]):  # more allocations than one young generation holds
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle only the collector can free
        if i % 1000 == 0:
            weakref.finalize(a, freed.append, i)
    assert freed, "no cyclic garbage was collected without an explicit gc.collect()"
