"""Drive a `Simulation`: publish at a rate through the Publisher, or write partner extracts."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from streams.avro.catalogue import load_catalogue
from streams.publish.extracts import csv_columns, flatten
from streams.publish.publisher import DeliveryError, Publisher, ensure_raw_topics
from streams.publish.simulate.core import Simulation
from streams.settings import Settings


@dataclass
class RunResult:
    published: int = 0
    failed: int = 0
    by_event_type: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def run(
    settings: Settings,
    rate: float = 20.0,
    duration: float | None = None,
    *,
    simulation: Simulation | None = None,
    seed: int = 1,
    people: int = 3000,
    events: int | None = None,
    truth_path: Path | None = None,
    stop: threading.Event | None = None,
    on_event: Callable[[int], None] | None = None,
) -> RunResult:
    """Publish simulated events at `rate`/s (0: as fast as possible) until `duration` seconds,
    `events` events or `stop` is set; flushes every publisher, then writes the truth file.

    `recorded_at` is stamped with the real time of publishing, so latency metrics make sense.
    """
    sim = simulation or Simulation(seed, people)
    catalogue = load_catalogue(settings.schemas_dir)
    ensure_raw_topics(settings, catalogue)
    publishers: dict[str, Publisher] = {}
    result = RunResult()
    stream = sim.events()
    start = time.monotonic()
    sent = 0
    try:
        while (events is None or sent < events) and not (stop is not None and stop.is_set()):
            if duration is not None and time.monotonic() - start >= duration:
                break
            partner, event_type, event = next(stream)
            pub = publishers.get(partner)
            if pub is None:
                pub = publishers[partner] = Publisher(settings, partner, catalogue)
            event["envelope"]["recorded_at"] = datetime.now(UTC)
            pub.publish(event_type, event)
            sent += 1
            result.by_event_type[event_type] += 1
            if on_event is not None:
                on_event(sent)
            ahead = start + sent / rate - time.monotonic() if rate > 0 else 0.0
            if ahead > 0:
                if stop is not None:
                    stop.wait(ahead)
                else:
                    time.sleep(ahead)
    finally:
        for pub in publishers.values():
            try:
                pub.close()
            except DeliveryError as exc:
                result.failed += len(exc.failures)
        result.published = sent - result.failed
        result.seconds = time.monotonic() - start
        if truth_path is not None:
            sim.write_truth(truth_path)
    return result


def write_extracts(sim: Simulation, out_dir: Path, events: int = 1000) -> list[Path]:
    """`events` simulated events as partner extracts: `<partner>.<event_type>.csv` (dotted columns),
    or `.jsonl` for event types with arrays of records. Dates of birth use each partner's own
    format; envelope ids are kept so the truth file's event ids match what gets published."""
    catalogue = load_catalogue()
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[tuple[str, str], tuple[IO[str], Any]] = {}
    paths: list[Path] = []
    skip = {"envelope.event_type", "envelope.source_partner", "envelope.schema_version"}
    try:
        for g in sim.generate(events):
            key = (g.partner, g.event_type)
            et = catalogue.event_type(g.event_type)
            columns = [c for c in csv_columns(et) if c not in skip]
            if key not in files:
                nested = any("[]" in p for p in et.fields)  # arrays of records: JSON Lines
                path = out_dir / f"{g.partner}.{g.event_type}.{'jsonl' if nested else 'csv'}"
                paths.append(path)
                out: IO[str] = path.open("w", newline="", encoding="utf-8")
                writer = None if nested else csv.DictWriter(out, fieldnames=columns)
                if writer is not None:
                    writer.writeheader()
                files[key] = (out, writer)
            fh, writer = files[key]
            if writer is None:
                fh.write(json.dumps(_jsonable(g.event), ensure_ascii=False) + "\n")
            else:
                dob_format = sim.record(g.people[0][0], g.partner).dob_format if g.people else "%Y-%m-%d"
                writer.writerow(flatten(g.event, columns, _formatter(dob_format)))
    finally:
        for fh, _ in files.values():
            fh.close()
    return sorted(paths)


def _formatter(dob_format: str) -> Callable[[str, Any], str]:
    def fmt(column: str, value: Any) -> str:
        if column.endswith("date_of_birth") and isinstance(value, date):
            return value.strftime(dob_format)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ";".join(str(v) for v in value)
        if isinstance(value, datetime | date):
            return value.isoformat()
        return str(value)

    return fmt


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
