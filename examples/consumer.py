"""A downstream recipient's consumer: read `shared.<recipient>.<event_type>` and print each record.

This is all a recipient needs: a Kafka client and the schema registry. Records are Avro in the
Confluent wire format, so confluent-kafka's `AvroDeserializer` decodes them with the writer schema
the bus registered for that topic (what the recipient's agreement releases, nothing more).
Connection and security settings come from the `SHARINGBUS_*` environment (`streams.settings`).

The bus delivers at least once: a record can arrive twice after a rebalance. Each carries its
event id in the `sharingbus.event_id` header, so a recipient de-duplicates on it (as below).

    python examples/consumer.py --recipient vru_analysts --event-type police.crime_recorded --from-beginning
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections import OrderedDict
from typing import Any

from confluent_kafka import DeserializingConsumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import StringDeserializer

from streams import topics
from streams.settings import Settings

EVENT_ID_HEADER = "sharingbus.event_id"


class RecentIds:
    """The last `size` event ids seen: enough to drop redelivered duplicates, bounded in memory."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def seen(self, event_id: str) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return True
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return False


def make_consumer(settings: Settings, group: str, from_beginning: bool) -> DeserializingConsumer:
    registry = SchemaRegistryClient(settings.registry_config())
    conf = settings.kafka_config(
        **{
            "group.id": group,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": True,
            "key.deserializer": StringDeserializer("utf_8"),
            "value.deserializer": AvroDeserializer(registry),
        }
    )
    return DeserializingConsumer(conf)


def _event_id(headers: Any) -> str | None:
    pairs = headers.items() if isinstance(headers, dict) else headers or []
    for name, value in pairs:
        if name == EVENT_ID_HEADER and value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipient", required=True, help="recipient id, e.g. vru_analysts")
    parser.add_argument("--event-type", required=True, help="event type, e.g. police.crime_recorded")
    parser.add_argument("--group", help="consumer group (default: <recipient>-example)")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest retained record")
    parser.add_argument(
        "--max", type=int, default=0, help="stop after this many records (0: run until Ctrl-C)"
    )
    args = parser.parse_args(argv)

    topic = topics.shared(args.recipient, args.event_type)
    consumer = make_consumer(Settings(), args.group or f"{args.recipient}-example", args.from_beginning)
    consumer.subscribe([topic])
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"consuming {topic}", file=sys.stderr)
    recent, printed = RecentIds(), 0
    try:
        while not stop and (args.max <= 0 or printed < args.max):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    print(f"error: {err}", file=sys.stderr)
                continue
            event_id = _event_id(msg.headers())
            if event_id is not None and recent.seen(event_id):
                continue
            record = {
                "key": msg.key(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "value": msg.value(),
            }
            print(json.dumps(record, default=str, sort_keys=True), flush=True)
            printed += 1
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
