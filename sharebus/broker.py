"""`sharebus broker`: the embedded Tansu broker, durable on disk unless asked to keep memory only."""

from __future__ import annotations

from pathlib import Path

import typer

from sharebus.common import announce, fail, wait_for_stop
from streams.errors import BrokerError
from streams.kafka.broker import EmbeddedBroker
from streams.settings import get_settings


def _default_port() -> int:
    """The port clients will look for: that of SHARINGBUS_BOOTSTRAP_SERVERS (first address)."""
    first = get_settings().bootstrap_servers.split(",")[0]
    _, _, port = first.rpartition(":")
    return int(port) if port.isdigit() else 9092


def broker(
    port: int = typer.Option(
        None, help="Port (default: that of SHARINGBUS_BOOTSTRAP_SERVERS; 0: a free port)"
    ),
    data_dir: Path = typer.Option(None, help="Where topics are kept (default: SHARINGBUS_DATA_DIR/broker)"),
    memory: bool = typer.Option(False, "--memory", help="Keep everything in memory; a restart loses it all"),
) -> None:
    """Start the embedded broker on loopback and print its bootstrap address."""
    if memory and data_dir is not None:
        fail("--memory and --data-dir exclude each other: choose where the broker keeps its topics")
    directory = None if memory else (data_dir or get_settings().data_dir / "broker")
    chosen = _default_port() if port is None else port
    try:
        b = EmbeddedBroker(port=chosen, data_dir=directory).start()
    except BrokerError as exc:
        fail(str(exc))
    try:
        announce("broker", b.bootstrap)
        wait_for_stop()
    finally:
        b.stop()


def register(app: typer.Typer) -> None:
    app.command("broker")(broker)
