"""`sharebus broker`: the embedded Tansu broker, in memory or, with --data-dir, durable on disk."""

from __future__ import annotations

from pathlib import Path

import typer

from sharebus.common import serve
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
    data_dir: Path = typer.Option(
        None, help="Keep topics, offsets and schemas here across restarts (default: memory only)"
    ),
) -> None:
    """Start the embedded broker on loopback and print its bootstrap address."""
    chosen = _default_port() if port is None else port
    serve("broker", lambda: EmbeddedBroker(port=chosen, data_dir=data_dir).start(), lambda b: b.bootstrap)


def register(app: typer.Typer) -> None:
    app.command("broker")(broker)
