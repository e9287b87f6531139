"""The enforcer's per-batch stage log: offsets per input partition, ack time, one JSON line a batch."""

from __future__ import annotations

from pathlib import Path

from streams.deadletter import RawRecord
from streams.kafka.stages import BatchStamps, StageLog, input_ranges, read_stage_log


def _rec(topic: str, partition: int, offset: int) -> RawRecord:
    return RawRecord(topic, partition, offset, b"k", b"v")


def test_input_ranges_give_first_and_last_offset_per_partition() -> None:
    records = [_rec("a", 0, 5), _rec("b", 1, 7), _rec("a", 0, 6), _rec("a", 1, 2), _rec("a", 0, 9)]
    assert sorted(input_ranges(records)) == [("a", 0, 5, 9), ("a", 1, 2, 2), ("b", 1, 7, 7)]


def test_ack_time_is_the_slowest_output_after_the_first_produce_call() -> None:
    stamps = BatchStamps(polled=100.0, ranges=[], decided=100.002, produced=100.003)
    stamps.ack_latencies.extend([0.004, 0.011, 0.007])
    stamps.settle()
    assert abs(stamps.acked - 100.014) < 1e-9


def test_a_batch_without_delivered_outputs_has_no_ack_time() -> None:
    stamps = BatchStamps(polled=1.0, ranges=[], produced=2.0)
    stamps.settle()
    assert stamps.acked == 0.0


def test_disabled_log_costs_nothing_and_writes_nothing(tmp_path: Path) -> None:
    log = StageLog(None)
    assert log.start([_rec("a", 0, 1)]) is None
    log.write(None)
    assert read_stage_log(tmp_path / "absent.jsonl") == []


def test_each_written_batch_reads_back_with_its_stamps(tmp_path: Path) -> None:
    path = tmp_path / "stages.jsonl"
    log = StageLog(path)
    first = log.start([_rec("a", 0, 1), _rec("a", 0, 2)])
    assert first is not None
    first.decided, first.produced, first.committed, first.outputs = 1.0, 2.0, 4.0, 3
    first.ack_latencies.append(0.5)
    log.write(first)
    second = log.start([_rec("b", 3, 10)])
    log.write(second)
    log.close()
    batches = read_stage_log(path)
    assert [b["ranges"] for b in batches] == [[["a", 0, 1, 2]], [["b", 3, 10, 10]]]
    assert batches[0]["acked"] == 2.5
    assert (batches[0]["decided"], batches[0]["committed"], batches[0]["outputs"]) == (1.0, 4.0, 3)
    assert batches[0]["polled"] <= batches[1]["polled"]
