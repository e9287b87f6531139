"""Faust's end of recovery, run on a stand-in recovery service: stream partitions kept over a
rebalance must be seeked to their committed offsets, or to 0 when nothing was committed yet,
before they resume (agents.rebalance_fix)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.types import TP

from agents import rebalance_fix

STREAM, CHANGELOG = TP("link.person", 0), TP("app-views_area_rows-changelog", 0)


class FakeConsumer:
    def __init__(self, calls: list[str], committed: dict[TP, int] | None = None) -> None:
        self.calls = calls
        self._committed_offset = dict(committed or {})  # Faust's: what perform_seek found

    def assignment(self) -> set[TP]:
        return {STREAM, CHANGELOG}

    def resume_partitions(self, tps: Any) -> None:
        self.calls.append(f"resume {sorted(tp.topic for tp in tps)}")

    async def perform_seek(self) -> None:
        self.calls.append("seek started")
        await asyncio.sleep(0.01)  # a round trip to the broker: the fetcher runs meanwhile
        self.calls.append("seek done")

    async def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(f"seek {tp.topic} to {offset}")

    def resume_flow(self) -> None:
        self.calls.append("resume flow")


def recovery(calls: list[str], committed: dict[TP, int] | None = None) -> Any:
    """Just what `Recovery.on_recovery_completed` touches."""

    async def send() -> None:
        return None

    async def wait(coro: Any, timeout: float | None = None) -> None:
        await coro

    async def start_fetcher() -> None:
        calls.append("fetcher")

    app = SimpleNamespace(
        consumer=FakeConsumer(calls, committed),
        on_rebalance_complete=SimpleNamespace(send=send),
        consumer_generation_id=3,
        flow_control=SimpleNamespace(resume=lambda: calls.append("resume flow control")),
        conf=SimpleNamespace(broker_request_timeout=5.0, consumer_auto_offset_reset="earliest"),
        _fetcher=SimpleNamespace(maybe_start=start_fetcher),
        assignor=SimpleNamespace(assigned_standbys=set),
        on_rebalance_end=lambda: calls.append("rebalance end"),
    )
    tables = SimpleNamespace(values=list, on_actives_ready=lambda: None, on_standbys_ready=lambda: None)
    return SimpleNamespace(
        app=app,
        log=SimpleNamespace(info=lambda *a: None, dev=lambda *a: None, warning=lambda *a: None),
        tables=tables,
        actives_for_table={},
        standbys_for_table={},
        _set_recovery_ended=lambda: None,
        _is_changelog_tp=lambda tp: tp.topic.endswith("-changelog"),
        _wait=wait,
        completed=SimpleNamespace(set=lambda: calls.append("completed")),
    )


@pytest.fixture
def installed() -> Any:
    original = Recovery.on_recovery_completed, Recovery._resume_streams
    rebalance_fix.install()
    yield
    Recovery.on_recovery_completed, Recovery._resume_streams = original  # type: ignore[method-assign]


def run_end_of_recovery(generation_id: int = 3, committed: dict[TP, int] | None = None) -> list[str]:
    calls: list[str] = []
    fake = recovery(calls, committed)
    asyncio.run(Recovery.on_recovery_completed(fake, generation_id))
    assert "resume_partitions" not in vars(fake.app.consumer)
    return calls


def test_faust_alone_resumes_before_seeking_and_leaves_an_uncommitted_partition_where_it_is() -> None:
    calls: list[str] = []
    asyncio.run(rebalance_fix._original(recovery(calls), 3))
    assert calls.index("resume ['link.person']") < calls.index("seek done")
    assert "seek link.person to 0" not in calls


def test_an_uncommitted_kept_partition_is_read_from_its_start_before_it_resumes(installed: Any) -> None:
    calls = run_end_of_recovery()
    assert calls[:4] == ["seek started", "seek done", "seek link.person to 0", "resume ['link.person']"]
    assert calls.count("resume ['link.person']") == 1


def test_a_committed_kept_partition_resumes_after_the_seek_from_its_commit(installed: Any) -> None:
    calls = run_end_of_recovery(committed={STREAM: 120})
    assert calls[:3] == ["seek started", "seek done", "resume ['link.person']"]


def test_without_a_seek_the_partitions_still_resume(installed: Any) -> None:
    calls = run_end_of_recovery(generation_id=4)  # another rebalance began: Faust returns early
    assert "seek started" not in calls and "resume ['link.person']" not in calls
    consumer_calls: list[str] = []
    consumer = FakeConsumer(consumer_calls)

    async def resumes_without_seeking() -> None:
        consumer.resume_partitions({STREAM})

    asyncio.run(rebalance_fix.seek_before_resume(consumer, resumes_without_seeking))
    assert consumer_calls == ["resume ['link.person']"]
    assert "resume_partitions" not in vars(consumer) and "perform_seek" not in vars(consumer)
