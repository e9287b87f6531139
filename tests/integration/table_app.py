"""A minimal Faust app with one table, run as a subprocess by test_table_recovery.py.

argv: bootstrap source_topic app_id web_port fix(0|1)
"""

from __future__ import annotations

import sys

import faust
from faust.web import Request, Response, View

bootstrap, source, app_id, port, fix = sys.argv[1:6]

if fix == "1":
    from agents import recovery_fix

    recovery_fix.install({"bootstrap.servers": bootstrap})

app = faust.App(
    app_id,
    broker=f"kafka://{bootstrap}",
    value_serializer="raw",
    key_serializer="raw",
    topic_partitions=4,
    topic_disable_leader=True,
    broker_session_timeout=2.0,
    broker_heartbeat_interval=0.5,
    web_port=int(port),
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
    web_tables_enabled=False,
    store="memory://",
    producer_linger_ms=100,
)
table = app.Table("entries", default=None, partitions=4)
topic = app.topic(source, value_serializer="raw", key_serializer="raw", partitions=4)


@app.agent(topic)
async def store(stream: faust.StreamT) -> None:
    async for event in stream.events():
        table[event.key.decode()] = event.value.decode()


@app.page("/size")
async def size(web: View, request: Request) -> Response:
    recovered = app.tables.recovery.completed.is_set()
    return web.json({"size": len(table), "recovered": recovered})


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--web-port", port]
    app.main()
