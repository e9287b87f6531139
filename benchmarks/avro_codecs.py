"""Avro decode/encode per event, side by side, on the benchmark's simulated events.

    .venv/bin/python -m benchmarks.avro_codecs [--events 20000] [--rounds 5]

Measures, interleaved round by round so a busy machine slows every codec alike (best round kept):

  fastavro        `schemaless_reader` / `schemaless_writer` on a schema parsed once, as the engine
                  decodes raw events and encodes outputs (`streams/enforce/engine.py`);
  fastavro, specialised writer
                  the writer given each optional record already resolved to its union branch
                  (fastavro's tuple notation, resolved once per schema): the union-branch validation
                  is what makes encoding cost 9-20 us an output (docs/performance.md);
  cavro           the Cython codec `cavro` (if installed; not a project dependency), a schema object
                  built once per schema, records as dicts.

Each event is decoded and re-encoded once with its own event type's schema (no broker, no
registry: the Confluent framing is stripped once). The share is against `engine_alone` of
`benchmarks/throughput.py` on the same events in the same run; the engine encodes outputs with the
plans' output schemas (one per plan applied) rather than the raw one, so the encode share is an
estimate of the same order, not the engine's exact figure.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

Codec = tuple[Callable[[bytes], Any], Callable[[Any], bytes]]


def fastavro_codec(schema: dict[str, Any]) -> Codec:
    parsed = parse_schema(schema)

    def decode(payload: bytes) -> Any:
        return schemaless_reader(io.BytesIO(payload), parsed, None)

    def encode(record: Any) -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, record)
        return buf.getvalue()

    return decode, encode


def _optional_records(schema: Any) -> list[tuple[str, str]]:
    """(field, record name) of each top-level field typed ["null", record]."""
    out = []
    for f in schema.get("fields", []):
        t = f["type"]
        optional = isinstance(t, list) and len(t) == 2 and t[0] == "null" and isinstance(t[1], dict)
        if optional and t[1].get("type") == "record":
            name = t[1]["name"]
            ns = t[1].get("namespace") or schema.get("namespace")
            out.append((f["name"], f"{ns}.{name}" if ns and "." not in name else name))
    return out


def specialised_codec(schema: dict[str, Any]) -> Codec:
    """fastavro with each optional top-level record passed as (name, value): no branch validation."""
    decode, _ = fastavro_codec(schema)
    parsed = parse_schema(schema)
    optional = _optional_records(schema)

    def encode(record: Any) -> bytes:
        rec = dict(record)
        for field, name in optional:
            value = rec.get(field)
            if value is not None:
                rec[field] = (name, value)
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, rec)
        return buf.getvalue()

    return decode, encode


def cavro_codec(schema: dict[str, Any]) -> Codec | None:
    try:
        import cavro
    except ImportError:
        return None
    s = cavro.Schema(json.dumps(schema), record_decodes_to_dict=True, record_can_encode_dict=True)
    return s.binary_decode, s.binary_encode


def measure(
    codecs: dict[str, dict[str, Codec]], events: Sequence[tuple[str, bytes]], rounds: int
) -> dict[str, tuple[float, float]]:
    """Best (decode us, encode us) per event and codec over `rounds` interleaved rounds."""
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in codecs}
    for _ in range(rounds):
        for name, by_type in codecs.items():
            t0 = time.perf_counter()
            decoded = [by_type[t][0](p) for t, p in events]
            t1 = time.perf_counter()
            for (t, _p), rec in zip(events, decoded, strict=True):
                by_type[t][1](rec)
            t2 = time.perf_counter()
            best[name][0] = min(best[name][0], (t1 - t0) / len(events) * 1e6)
            best[name][1] = min(best[name][1], (t2 - t1) / len(events) * 1e6)
    return {k: (v[0], v[1]) for k, v in best.items()}


def run(n: int, rounds: int, seed: int = 1) -> tuple[dict[str, tuple[float, float]], float]:
    """Per codec (decode us, encode us) an event, and the engine's own us an event (same events)."""
    from benchmarks._common import Stack, encode_events
    from benchmarks.throughput import engine_alone
    from streams.avro.catalogue import load_catalogue

    with Stack() as stack, stack.bus("avro") as bus:
        assert bus.settings is not None
        encoded = encode_events(bus.settings, n, seed=seed)
        catalogue = load_catalogue(bus.settings.schemas_dir)
        engine_us = 1e6 / engine_alone(bus.settings, encoded)
    schemas = {t: catalogue.event_type(t).schema for t in {e.event_type for e in encoded}}
    events = [(e.event_type, e.value[5:]) for e in encoded]
    codecs: dict[str, dict[str, Codec]] = {
        "fastavro": {t: fastavro_codec(s) for t, s in schemas.items()},
        "fastavro, specialised writer": {t: specialised_codec(s) for t, s in schemas.items()},
    }
    cav = {t: cavro_codec(s) for t, s in schemas.items()}
    if all(c is not None for c in cav.values()):
        codecs["cavro"] = {t: c for t, c in cav.items() if c is not None}
    return measure(codecs, events, rounds), engine_us


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    results, engine_us = run(args.events, args.rounds)
    print(f"  engine alone (process_batch, no broker) {engine_us:6.1f} us an event")
    for name, (dec, enc) in results.items():
        print(
            f"  {name:<30} decode {dec:6.1f} us  encode {enc:6.1f} us  an event "
            f"({(dec + enc) / engine_us:.0%} of the engine's time)"
        )


if __name__ == "__main__":
    main()
