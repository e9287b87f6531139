"""Scanning what leaves the bus on Kafka: every shared and view topic read to its end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.privacy.leakscan.scanner import Leak, LeakScanner


@dataclass
class ScanReport:
    """What a scan read (records per source) and every leak it found."""

    scanned: Counter[str] = field(default_factory=Counter)
    leaks: list[Leak] = field(default_factory=list)

    def extend(self, where: str, leaks: Iterable[Leak], count: int = 1) -> None:
        self.scanned[where] += count
        self.leaks.extend(leaks)

    def summary(self, limit: int = 20) -> str:
        by_kind = Counter(leak.kind for leak in self.leaks)
        lines = [f"{len(self.leaks)} leaks ({dict(by_kind)}) in {sum(self.scanned.values())} items scanned"]
        lines += [str(leak) for leak in self.leaks[:limit]]
        return "\n".join(lines)


def scan_topics(
    kafka_config: dict[str, Any],
    scanner: LeakScanner,
    prefixes: Sequence[str] = ("shared.", "views."),
    registry: Any = None,
    timeout: float = 120.0,
) -> ScanReport:
    """Read every topic starting with one of `prefixes` to its end and scan keys, values and headers.

    Values in the registry wire format are decoded with `registry` (a `SchemaRegistryClient`), so
    a field is matched by its value, not by Avro bytes; anything else is read as JSON or text.
    """
    from confluent_kafka.admin import AdminClient

    from streams.avro.serde import SchemaCache, decode
    from streams.kafka.reader import read_to_end

    cache = SchemaCache(registry) if registry is not None else None

    def avro(data: bytes) -> Any:
        if cache is None or data[:1] != b"\x00":
            raise ValueError("not registry-framed")
        return decode(data, cache)[1]

    report = ScanReport()
    names = AdminClient(kafka_config).list_topics(timeout=15).topics
    for topic in sorted(t for t in names if t.startswith(tuple(prefixes))):
        report.scanned[topic] += 0
        for msg in read_to_end(kafka_config, topic, timeout=timeout):
            where = f"{topic}[{msg.partition()}]@{msg.offset()}"
            leaks = scanner.scan_bytes(where, msg.value(), avro)
            key = msg.key()
            if key:
                leaks += scanner.scan_text(where + " key", key.decode("utf-8", "replace"))
            headers: Any = msg.headers() or []
            for name, value in headers.items() if isinstance(headers, dict) else headers:
                if isinstance(value, bytes | str) and value:
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    leaks += scanner.scan_text(f"{where} header {name}", text)
            report.extend(topic, leaks)
    return report
