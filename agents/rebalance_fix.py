"""A contained fix for Faust: stream partitions are seeked to their committed offsets before they resume.

After a rebalance, faust-streaming 0.15's `Recovery.on_recovery_completed` resumes the stream
partitions and only then seeks them to their committed offsets. A partition the worker kept
resumes from the consumer's fetch position, which is past the records fetched but never
processed before the rebalance (flow control discards them). Records from there are delivered
while the seek is in flight; when the seek resets the consumer's read offset to the committed
offset in the middle of such a batch, the next record of the batch makes Faust record the
offsets in between as a gap (counted as acked, so committed past), and the same records fetched
again from the committed offset are dropped as already read: processed by no one
(faust-streaming issue 216 describes the symptom). Seeking first leaves nothing stale to deliver:
a seek discards the consumer's buffered records of the partition, and nothing is fetched for a
paused partition.

`install` wraps `on_recovery_completed` (and `_resume_streams`, its counterpart for an app
without tables): while either runs, resuming the stream partitions is deferred until the seek
has completed (or until it returns, on a path that does not seek).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.tables.recovery import Recovery

__all__ = ["install", "seek_before_resume"]

_original = Recovery.on_recovery_completed
_original_resume = Recovery._resume_streams


async def seek_before_resume(consumer: Any, completed: Callable[[], Awaitable[None]]) -> None:
    """Run `completed` (Faust's end of recovery) with the consumer's stream-partition resume held
    back until its `perform_seek` is done."""
    deferred: set[Any] = set()
    resume: Callable[[Iterable[Any]], None] = consumer.resume_partitions
    seek: Callable[[], Awaitable[None]] = consumer.perform_seek

    def defer(partitions: Iterable[Any]) -> None:
        deferred.update(partitions)

    async def seek_then_resume() -> None:
        await seek()
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


async def _on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    await seek_before_resume(self.app.consumer, lambda: _original(self, generation_id))


async def _resume_streams(self: Recovery, generation_id: int = 0) -> None:
    await seek_before_resume(self.app.consumer, lambda: _original_resume(self, generation_id))


def install() -> None:
    """Make every Faust app in this process seek its stream partitions before resuming them."""
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
