"""A contained fix for Faust: after a rebalance, stream partitions are seeked before they resume,
and a partition nobody has committed yet is read again from its start.

Before a rebalance the consumer may have fetched records that were never processed (flow control
discards them), so its fetch position is past them. faust-streaming 0.15's
`Recovery.on_recovery_completed` then (1) resumes the stream partitions and (2) "seeks them to their
committed offsets" with aiokafka's `seek_to_committed`, which seeks only partitions whose committed
offset is above 0. Two ways to lose records follow:
- a partition with no commit yet (a worker that had just started on it) is not seeked at all: it
  resumes past the discarded records, which nobody ever processes (in the scale-out test, up to
  every area fact of one `link.person` partition);
- records delivered from the old position while the seek is in flight make Faust record the
  offsets in between as a gap (counted as acked, so committed past) and drop the same records
  fetched again as already read (reported upstream as "Recovery without tables resumes from
  kafka before seeking to committed offsets").
`install` wraps `on_recovery_completed` (and `_resume_streams`, its counterpart for an app without
tables): while either runs, resuming the stream partitions waits until the seek has completed,
and when the app reads from the earliest offset, partitions without a committed offset are
seeked to 0 first. A seek discards the consumer's buffered records of the partition, and nothing
is fetched for a paused one, so nothing stale is left to deliver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.tables.recovery import Recovery

__all__ = ["install", "seek_before_resume"]

_original = Recovery.on_recovery_completed
_original_resume = Recovery._resume_streams


async def seek_before_resume(
    consumer: Any, completed: Callable[[], Awaitable[None]], from_start: bool = True
) -> None:
    """Run `completed` (Faust's end of recovery) with the consumer's stream-partition resume held
    back until its `perform_seek` is done; with `from_start`, partitions without a committed
    offset (Faust keeps none, or 0, in `_committed_offset`) are seeked to offset 0 as well."""
    deferred: set[Any] = set()
    resume: Callable[[Iterable[Any]], None] = consumer.resume_partitions
    seek: Callable[[], Awaitable[None]] = consumer.perform_seek

    def defer(partitions: Iterable[Any]) -> None:
        deferred.update(partitions)

    async def seek_then_resume() -> None:
        await seek()
        if from_start:
            for tp in sorted(deferred):
                if not consumer._committed_offset.get(tp):
                    await consumer.seek(tp, 0)
        if deferred:
            resume(set(deferred))
            deferred.clear()

    consumer.resume_partitions, consumer.perform_seek = defer, seek_then_resume
    try:
        await completed()
    finally:
        del consumer.resume_partitions, consumer.perform_seek  # the class's methods again
        if deferred:  # no seek ran (nothing assigned, or another rebalance started): as Faust would
            resume(set(deferred))


def _from_start(self: Recovery) -> bool:
    return str(self.app.conf.consumer_auto_offset_reset) == "earliest"


async def _on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    await seek_before_resume(self.app.consumer, lambda: _original(self, generation_id), _from_start(self))


async def _resume_streams(self: Recovery, generation_id: int = 0) -> None:
    await seek_before_resume(
        self.app.consumer, lambda: _original_resume(self, generation_id), _from_start(self)
    )


def install() -> None:
    """Make every Faust app in this process seek its stream partitions before resuming them."""
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
