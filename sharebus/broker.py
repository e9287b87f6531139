"""`sharebus broker`: the embedded Tansu broker."""

from __future__ import annotations

import typer

from sharebus.common import announce, fail, wait_for_stop
from streams.errors import BrokerError
from streams.kafka.broker import EmbeddedBroker


def broker(port: int = typer.Option(0, help="Port to listen on (0: a free port)")) -> None:
    """Start the embedded broker on loopback and print its bootstrap address."""
    try:
        b = EmbeddedBroker(port=port).start()
    except BrokerError as exc:
        fail(str(exc))
    try:
        announce("broker", b.bootstrap)
        wait_for_stop()
    finally:
        b.stop()


def register(app: typer.Typer) -> None:
    app.command("broker")(broker)
